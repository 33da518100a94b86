"""Google Text-to-Speech's voices: which stream, which one "default" picks, the list used when Google cannot be asked."""

from __future__ import annotations

from collections.abc import Iterable

from google.cloud.texttospeech_v1.types import cloud_tts

from tongyeok_server import languages
from tongyeok_server.engines import Voice

# The model part of the names of the voices StreamingSynthesize takes.
STREAMING_MODELS = ("Chirp3-HD",)
# The locales of Chirp 3: HD (Google's list), for the built-in voices used when ListVoices cannot be asked.
CHIRP3_LOCALES = (  # noqa: SIM905 - a list of 38 quoted tags reads worse
    "ar-XA bn-IN cmn-CN da-DK de-DE en-AU en-GB en-IN en-US es-ES es-US fi-FI fr-CA fr-FR gu-IN hi-IN id-ID it-IT "
    "ja-JP kn-IN ko-KR ml-IN mr-IN nb-NO nl-BE nl-NL pl-PL pt-BR ru-RU sv-SE sw-KE ta-IN te-IN th-TH tr-TR uk-UA "
    "ur-IN vi-VN"
).split()
# The locale "default" prefers for a bare language.
_USUAL_LOCALE = {"en": "en-US", "es": "es-ES", "fr": "fr-FR", "pt": "pt-BR", "nl": "nl-NL", "zh": "cmn-CN"}


def streams(voice_name: str) -> bool:
    """Whether Google synthesises this voice over ``StreamingSynthesize``."""
    return any(f"-{model}-" in voice_name for model in STREAMING_MODELS)


def from_google(voices: Iterable[cloud_tts.Voice]) -> list[Voice]:
    """ListVoices' answer as the service's voices."""
    return [Voice(v.name, tuple(v.language_codes), describe(v)) for v in voices]


def built_in(preferred: str) -> list[Voice]:
    """One Chirp 3: HD voice per locale (``preferred`` if it streams, else Charon)."""
    suffix = preferred if streams(f"x-{preferred}") else "Chirp3-HD-Charon"
    return [Voice(f"{locale}-{suffix}", (locale,), "Chirp 3: HD (built-in list), streams") for locale in CHIRP3_LOCALES]


def order(voices: Iterable[Voice], preferred: str) -> list[Voice]:
    """Grouped by language; in each, the usual locale, streaming voices and the ``preferred`` one first."""

    def key(voice: Voice) -> tuple[str, bool, bool, bool, str]:
        locale = voice.language_codes[0] if voice.language_codes else ""
        language = languages.primary(locale)
        usual = _USUAL_LOCALE.get(language, "")
        return (
            language,
            bool(usual) and locale != usual,
            not streams(voice.name),
            not voice.name.endswith(preferred),
            voice.name,
        )

    return sorted(voices, key=key)


def describe(voice: cloud_tts.Voice) -> str:
    """How ListLanguages describes a voice."""
    gender = cloud_tts.SsmlVoiceGender(voice.ssml_gender).name.lower()
    path = "streams" if streams(voice.name) else "per clause"
    return f"Google {gender} voice, {voice.natural_sample_rate_hertz} Hz, {path}"
