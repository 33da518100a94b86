"""Speech output as a session extension: a ``Speaker`` follows every stream or request that asks for it.

The extension owns the server's one ``Synthesizer``. For a session (or a
TranslateText request) whose config has ``speech_output`` it resolves the
voices against the engine (INVALID_ARGUMENT naming the field when a voice or
language is not there), and attaches an observer that feeds the caller's
events to a ``Speaker``. Streams without ``speech_output`` cost nothing.
"""

from __future__ import annotations

import logging

import grpc

from tongyeok_server import languages
from tongyeok_server.engines import Voice
from tongyeok_server.errors import ServiceError, invalid_argument
from tongyeok_server.session import events as ev
from tongyeok_server.session.extension import LanguageNotes, SessionExtension, StartNotes
from tongyeok_server.session.observer import EventSink, SessionObserver
from tongyeok_server.session.session import Session
from tongyeok_server.session.speech import DEFAULT_VOICE, SpeechOutput
from tongyeok_server.synthesis.base import Synthesizer
from tongyeok_server.synthesis.speaker import Speaker

log = logging.getLogger(__name__)

NO_SYNTHESIZER = (
    "this server has no speech synthesizer (it was started with --synthesizer none); "
    "leave speech_output unset, or use a server started with --synthesizer embedded, openai or google"
)


class _SpeakerObserver(SessionObserver):
    def __init__(self, speaker: Speaker) -> None:
        self.speaker = speaker

    def on_event(self, event: ev.SessionEvent) -> None:
        self.speaker.on_event(event)

    def on_close(self) -> None:
        self.speaker.close()


class SpeechExtension(SessionExtension):
    """Speaks translations for the sessions and requests that ask (``speech_output``)."""

    def __init__(self, synthesizer: Synthesizer | None) -> None:
        self.synthesizer = synthesizer

    # -- sessions ------------------------------------------------------------

    def attach(self, session: Session) -> SessionObserver | None:
        """A speaker for ``session`` if its config asks for speech."""
        output = session.config.speech
        if output is None:
            return None
        voices = self._resolve("config.speech_output", output)
        return self._observer(output, voices, session, session.id, simultaneous=session.config.simultaneous is not None)

    def started(self, session: Session, notes: StartNotes) -> None:
        """The synthesizer and the voices chosen, when the session speaks."""
        output = session.config.speech
        if output is None or self.synthesizer is None:
            return
        notes.synthesizer = self.synthesizer.description
        notes.voices = self._resolve("config.speech_output", output)

    # -- TranslateText -----------------------------------------------------

    def attach_text(self, speech: SpeechOutput | None, sink: EventSink) -> SessionObserver | None:
        """A speaker for one TranslateText request that has ``speech_output``."""
        if speech is None:
            return None
        voices = self._resolve("speech_output", speech)
        return self._observer(speech, voices, sink, "translate")

    # -- ListLanguages -------------------------------------------------------

    def languages(self, notes: LanguageNotes) -> None:
        """The synthesizer and its voices."""
        synthesizer = self.synthesizer
        if synthesizer is None:
            return
        notes.synthesizer = synthesizer.description
        notes.voices = list(synthesizer.voices())
        spoken = {languages.primary(code) for voice in notes.voices for code in voice.language_codes}
        for language in spoken:
            default = synthesizer.default_voice(language)
            if default is not None:
                notes.defaults[language] = default

    async def start(self) -> None:
        """The engine's own start, on the server's loop (Google lists its voices)."""
        if self.synthesizer is not None:
            await self.synthesizer.start()

    def close(self) -> None:
        """Release the engine."""
        if self.synthesizer is not None:
            self.synthesizer.close()

    # -- internals -----------------------------------------------------------

    def _observer(
        self,
        output: SpeechOutput,
        voices: dict[str, Voice],
        sink: EventSink,
        label: str,
        *,
        simultaneous: bool = False,
    ) -> SessionObserver:
        synthesizer = self.synthesizer
        assert synthesizer is not None  # _resolve refused otherwise
        synthesizer.warm_up()  # e.g. load a voice model while the first sentence is recognised
        return _SpeakerObserver(Speaker(synthesizer, output, voices, sink, label, simultaneous=simultaneous))

    def _resolve(self, field: str, output: SpeechOutput) -> dict[str, Voice]:
        """The voice for each language to speak, or the error that says what is available."""
        synthesizer = self.synthesizer
        if synthesizer is None:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, NO_SYNTHESIZER)
        name = synthesizer.description.name
        resolved: dict[str, Voice] = {}
        for i, (language, wanted) in enumerate(output.voices):
            if wanted == DEFAULT_VOICE:
                voice = synthesizer.default_voice(language)
                if voice is None:
                    spoken = sorted({languages.primary(c) for v in synthesizer.voices() for c in v.language_codes})
                    raise invalid_argument(
                        f"{field}: the {name} synthesizer cannot speak {language}; it speaks "
                        f"{', '.join(spoken) or 'no language (is it installed?)'}"
                    )
            else:
                found = synthesizer.find_voice(wanted, language)
                if found is None:
                    names = [v.name for v in synthesizer.voices() if v.speaks(language)]
                    raise invalid_argument(
                        f"{field}.voices[{i}].voice is {wanted!r}, which the {name} synthesizer does not have for "
                        f"{language}; available: {', '.join(names) or 'none'} (or 'default')"
                    )
                voice = found
            resolved[language] = voice
        return resolved
