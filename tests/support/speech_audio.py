"""Collecting and checking the ``translation_audio`` events of a stream in tests."""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

import numpy as np
import soundfile

from tongyeok_client.proto import interpreter_pb2 as pb

_RAW_SUBTYPES: dict[int, str] = {
    pb.SPEECH_ENCODING_LINEAR16: "PCM_16",
    pb.SPEECH_ENCODING_MULAW: "ULAW",
    pb.SPEECH_ENCODING_ALAW: "ALAW",
}


def decode(audio: bytes, encoding: int, rate: int) -> tuple[np.ndarray, int]:
    """Decode one utterance's audio with libsndfile: (int16 samples, the rate the file says)."""
    if encoding == pb.SPEECH_ENCODING_OGG_OPUS:
        samples, file_rate = soundfile.read(io.BytesIO(audio), dtype="int16")
        return samples, int(file_rate)
    samples, _ = soundfile.read(
        io.BytesIO(audio), format="RAW", subtype=_RAW_SUBTYPES[encoding], samplerate=rate, channels=1, dtype="int16"
    )
    return samples, rate


def utterance_audio(events: list[tuple[str, Any]], language: str) -> dict[int, bytes]:
    """Each utterance's audio in ``language`` (resets honoured as the proto says), checking the chunk protocol.

    Checks: sequence numbers 0, 1, 2 ... without gaps, exactly one ``last_chunk``
    (the last), and no chunk of an utterance after a chunk of a later one.
    """
    chunks: dict[int, list[pb.TranslationAudio]] = defaultdict(list)
    finished: list[int] = []
    for kind, message in events:
        if kind == "translation_reset" and message.target_language_code == language:
            chunks.pop(message.utterance_id, None)
        if kind != "translation_audio" or message.target_language_code != language:
            continue
        uid = message.utterance_id
        assert not finished or uid > finished[-1] or (uid == finished[-1] and uid not in chunks), (
            f"audio of utterance {uid} after utterance {finished[-1]} had ended: interleaved"
        )
        if finished and uid == finished[-1]:
            finished.pop()  # restarted after a reset that came after its last chunk (not expected)
        assert message.sequence_number == len(chunks[uid]), (uid, message.sequence_number, len(chunks[uid]))
        chunks[uid].append(message)
        if message.last_chunk:
            finished.append(uid)
    out = {}
    for uid, pieces in chunks.items():
        assert pieces[-1].last_chunk, f"utterance {uid} has no last chunk"
        assert sum(p.last_chunk for p in pieces) == 1
        out[uid] = b"".join(p.audio for p in pieces)
    return out
