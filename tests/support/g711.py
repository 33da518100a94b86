"""G.711 (mu-law, A-law) for the fake Speech-to-Text: its own decoder, and how a word is spoken in it.

The fake decodes telephone audio itself (ITU-T G.711's expansion, written
out here rather than taken from the server's ``audio.convert``: a fake that
shared the server's table could not catch a wrong one). In LINEAR16 audio a
word is a run of samples whose value is its id; G.711 has only 128 positive
levels, so in G.711 audio word id k (1..127) is a run of the k-th smallest
positive level above silence, and silence the smallest level. Audio whose config names the
wrong law (or LINEAR16 sent as G.711) decodes to other levels and other
words, so a wrong decoding config shows up as wrong words, as with Google.
"""

from __future__ import annotations

import numpy as np

MULAW = "MULAW"
ALAW = "ALAW"
MAX_WORD_ID = 127


def _mulaw_levels() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent, mantissa = (u >> 4) & 7, u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_levels() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent, mantissa = (a >> 4) & 7, a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


#: Each code byte's linear sample value, per law.
LEVELS = {MULAW: _mulaw_levels(), ALAW: _alaw_levels()}


def _word_tables(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(word id -> code byte, code byte -> word id; 0 for silence and for levels that are no word).

    Silence is the smallest magnitude (mu-law 0, A-law +-8, whose usual code
    0xD5 is +8); words are the positive levels above it.
    """
    values = [int(v) for v in levels.tolist()]
    quiet = min(abs(v) for v in values)
    codes = np.zeros(MAX_WORD_ID + 1, dtype=np.uint8)
    codes[0] = max(c for c, v in enumerate(values) if v == quiet)  # mu-law 0xFF, A-law 0xD5
    ids = np.zeros(256, dtype=np.int16)
    positive = sorted({v for v in values if v > quiet})
    code_of_level = {v: c for c, v in enumerate(values)}
    for word_id, level in enumerate(positive[:MAX_WORD_ID], start=1):
        codes[word_id] = code_of_level[level]
        ids[code_of_level[level]] = word_id
    return codes, ids


_TABLES = {law: _word_tables(levels) for law, levels in LEVELS.items()}


def encode_words(samples: np.ndarray, law: str) -> bytes:
    """Word-id samples (0 = silence, 1..127 words) as G.711 bytes of ``law``."""
    if samples.size and (samples.min() < 0 or samples.max() > MAX_WORD_ID):
        raise ValueError(f"G.711 audio carries word ids 1..{MAX_WORD_ID} only")
    codes, _ = _TABLES[law]
    return bytes(codes[samples.astype(np.intp)].tobytes())


def decode_words(audio: bytes, law: str) -> np.ndarray:
    """G.711 bytes of ``law`` as word-id samples (int16; 0 for silence and for any level that is no word)."""
    _, ids = _TABLES[law]
    return ids[np.frombuffer(audio, dtype=np.uint8)]
