"""What Google's streaming responses mean for the caller: transcripts, stable text, activity, offsets.

One ``GoogleResults`` per ``GoogleRecognizerStream``, on its loop. It reads
each raw ``StreamingRecognizeResponse`` of any of the stream's Google calls
(offsets shifted by where that call started in the caller's audio) and
returns the events for the session and where each final result ended, which
the stream needs to trim its resend buffer. The stream keeps the audio and
the calls (``google_stream``); this keeps the meaning of the results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.cloud.speech_v2.types import cloud_speech

from tongyeok_server.recognition.base import RecognitionConfig, RecognitionEvent, SpeechActivity, Transcript
from tongyeok_server.recognition.stable_text import GOOGLE_STABLE, StableText

_BEGIN = int(cloud_speech.StreamingRecognizeResponse.SpeechEventType.SPEECH_ACTIVITY_BEGIN)
_END = int(cloud_speech.StreamingRecognizeResponse.SpeechEventType.SPEECH_ACTIVITY_END)


@dataclass
class Read:
    """One response's events for the session, and the audio positions where its final results ended."""

    events: list[RecognitionEvent] = field(default_factory=list)
    final_ends: list[int] = field(default_factory=list)  # absolute byte positions, whole frames
    results: int = 0  # how many results it carried (a call that carries any is making progress)


class GoogleResults:
    """The per-stream state of recognition: the utterance in progress and where the last final ended."""

    def __init__(self, config: RecognitionConfig) -> None:
        self._config = config
        self._bps = config.audio.bytes_per_second
        self._frame = config.audio.frame_bytes
        self._languages = {c.lower(): c for c in config.language_codes}
        self.last_final_end_s = 0.0
        self._speech_began_s: float | None = None
        # The stable prefix of the utterance in progress (kept across a restart: the same utterance goes on).
        self._stable = StableText()

    def read(self, response: Any, base: int) -> Read:
        """The events of ``response``, from a Google call that started at byte ``base`` of the caller's audio."""
        out = Read()
        base_s = base / self._bps
        if response.speech_event_type in (_BEGIN, _END):
            offset = base_s + response.speech_event_offset.ToNanoseconds() / 1e9
            if response.speech_event_type == _BEGIN:
                self._speech_began_s = offset
            if self._config.voice_activity_events:
                out.events.append(SpeechActivity(began=response.speech_event_type == _BEGIN, offset_s=offset))
        interim_text: list[str] = []
        interim_stability = 1.0
        interim_end = self.last_final_end_s
        interim_language = ""
        # Google's stable results lead a response (stability 0.9, the rest 0.01); a model that
        # gives no stability (0.0 means not set) leaves it to two successive interims to agree.
        stable: list[str] | None = []
        leading = True
        for result in response.results:
            out.results += 1
            if not result.alternatives:
                continue
            best = result.alternatives[0]
            end_ns = result.result_end_offset.ToNanoseconds()
            language = self._language(result.language_code)
            if result.is_final:
                self._final(out, best.transcript, language, end_ns, best.confidence, base)
            else:
                interim_text.append(best.transcript)
                interim_stability = min(interim_stability, result.stability)
                if result.stability == 0.0:
                    stable = None
                elif stable is not None and leading and result.stability >= GOOGLE_STABLE:
                    stable.append(best.transcript)
                else:
                    leading = False
                interim_end = max(interim_end, base_s + end_ns / 1e9)
                interim_language = interim_language or language
        text = "".join(interim_text).strip()
        if text and self._config.interim_results:
            text, stable_text = self._stable.update(text, None if stable is None else "".join(stable))
            out.events.append(
                Transcript(
                    text=text,
                    language_code=interim_language,
                    is_final=False,
                    start_offset_s=self._utterance_start(),
                    end_offset_s=interim_end,
                    stability=interim_stability,
                    stable_text=stable_text,
                )
            )
        return out

    def _final(self, out: Read, text: str, language: str, end_ns: int, confidence: float, base: int) -> None:
        # Google's offsets count from the start of this call; the call started at ``base``.
        end_pos = base + end_ns * self._bps // 1_000_000_000
        end_pos -= (end_pos - base) % self._frame
        end_s = max(end_pos / self._bps, self.last_final_end_s)
        start_s = self._utterance_start()
        out.final_ends.append(end_pos)
        self.last_final_end_s = end_s
        self._speech_began_s = None
        self._stable.reset()
        if text.strip():
            out.events.append(
                Transcript(text.strip(), language, True, start_s, end_s, stability=1.0, confidence=confidence)
            )

    def _utterance_start(self) -> float:
        began = self._speech_began_s
        return max(began, self.last_final_end_s) if began is not None else self.last_final_end_s

    def _language(self, reported: str) -> str:
        """Google reports ``ko-kr``; callers configured ``ko-KR``."""
        if not reported:
            return self._config.language_codes[0]
        return self._languages.get(reported.lower(), reported)
