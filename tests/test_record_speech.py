"""What the meeting record keeps of speech output, from the events a session emits (no database needed)."""

from __future__ import annotations

from tongyeok_server.session import events as ev
from tongyeok_server.store.spoken import SpokenTally


def chunk(seq: int, data: bytes, last: bool = False, encoding: str = "LINEAR16", rate: int = 16000) -> ev.Audio:
    return ev.Audio(3, "es", seq, data, last, encoding, rate, "es-female")


def test_a_translation_spoken_to_its_end_is_one_row_with_its_size_and_length() -> None:
    tally = SpokenTally("s1")
    tally.final(3)
    assert tally.audio(chunk(0, bytes(16000))) is None
    row = tally.audio(chunk(1, bytes(16000), last=True))
    assert row is not None
    assert (row.session_id, row.utterance_id, row.language_code, row.voice) == ("s1", 3, "es", "es-female")
    assert (row.audio_bytes, row.chunks, row.duration_ms) == (32000, 2, 1000)
    assert row.first_audio_after_final_ms is not None and row.first_audio_after_final_ms >= 0


def test_a_reset_or_a_failure_forgets_what_was_counted() -> None:
    tally = SpokenTally("s1")
    tally.audio(chunk(0, bytes(8000)))
    tally.audio(chunk(1, bytes(8000)))
    tally.dropped(3, "es")  # the translation was reset: its speech starts again from chunk 0
    assert tally.speaking == 0
    row = tally.audio(chunk(0, bytes(3200), last=True))
    assert row is not None and (row.audio_bytes, row.chunks) == (3200, 1)
    tally.audio(chunk(0, bytes(8000)))
    tally.dropped(3, "es")  # the synthesis failed: no row, and nothing left over
    assert tally.speaking == 0
    # A chunk already on its way when the failure was counted is counted alone, not with the dropped 8000 bytes.
    late = tally.audio(chunk(1, bytes(100), last=True))
    assert late is not None and (late.audio_bytes, late.chunks) == (100, 1)


def test_ogg_opus_has_no_length_and_mulaw_a_byte_per_sample() -> None:
    tally = SpokenTally("s1")
    opus = tally.audio(chunk(0, bytes(5000), last=True, encoding="OGG_OPUS", rate=48000))
    assert opus is not None and opus.duration_ms is None and opus.first_audio_after_final_ms is None
    mulaw = tally.audio(chunk(0, bytes(8000), last=True, encoding="MULAW", rate=8000))
    assert mulaw is not None and mulaw.duration_ms == 1000
