"""What the record keeps of speech output: per spoken translation its voice, encoding, size, length and delay.

The audio itself is not kept (it is the translation's text, spoken); a
translation that is reset starts its speech again, and one whose synthesis
failed leaves no row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from tongyeok_server.session import events as ev
from tongyeok_server.store import ops

# Bytes per sample of the encodings whose length is in their size.
_BYTES_PER_SAMPLE = {"LINEAR16": 2, "MULAW": 1, "ALAW": 1}


@dataclass
class _Spoken:
    voice: str
    encoding: str
    sample_rate_hz: int
    first_at: float
    audio_bytes: int = 0
    chunks: int = 0


class SpokenTally:
    """Adds up one session's audio events into one ``AddSpeech`` per translation spoken to its end."""

    def __init__(self, session_id: str) -> None:
        self._session_id = session_id
        self._final_at: dict[int, float] = {}
        self._open: dict[tuple[int, str], _Spoken] = {}

    @property
    def speaking(self) -> int:
        """Translations whose audio is being counted (started, not yet ended or dropped)."""
        return len(self._open)

    def final(self, utterance_id: int) -> None:
        """The utterance's final was delivered now (the delay is measured from it)."""
        self._final_at[utterance_id] = time.monotonic()

    def audio(self, event: ev.Audio) -> ops.AddSpeech | None:
        """Count a chunk; the write to make once it is the last one."""
        key = (event.utterance_id, event.target_language)
        spoken = self._open.get(key)
        if spoken is None or event.sequence_number == 0:
            spoken = self._open[key] = _Spoken(event.voice, event.encoding, event.sample_rate_hz, time.monotonic())
        spoken.audio_bytes += len(event.audio)
        spoken.chunks += 1
        if not event.last:
            return None
        del self._open[key]
        final_at = self._final_at.get(event.utterance_id)
        per_sample = _BYTES_PER_SAMPLE.get(spoken.encoding)
        return ops.AddSpeech(
            session_id=self._session_id,
            utterance_id=event.utterance_id,
            language_code=event.target_language,
            voice=spoken.voice,
            encoding=spoken.encoding,
            sample_rate_hz=spoken.sample_rate_hz,
            audio_bytes=spoken.audio_bytes,
            chunks=spoken.chunks,
            duration_ms=(
                round(spoken.audio_bytes / per_sample / spoken.sample_rate_hz * 1000)
                if per_sample and spoken.sample_rate_hz
                else None
            ),
            first_audio_after_final_ms=None if final_at is None else round((spoken.first_at - final_at) * 1000),
            created_at=datetime.now(UTC),
        )

    def dropped(self, utterance_id: int, language: str) -> None:
        """Its speech failed, or its translation was reset (the speech starts again): forget what was counted."""
        self._open.pop((utterance_id, language), None)
