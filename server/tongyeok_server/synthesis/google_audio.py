"""Google Text-to-Speech's audio bytes made into the service's chunks.

- ``LINEAR16``, ``MULAW`` and ``ALAW`` from ``SynthesizeSpeech`` come in a
  WAV file (Google's docs say so); the service sends raw samples, so the
  header goes (``WavPayload``). Streaming gives them headerless; should a
  header come anyway, it goes too.
- ``OGG_OPUS`` from ``StreamingSynthesize`` is one Ogg stream per call, cut
  wherever Google cuts its responses; the contract promises whole Ogg pages
  per chunk, so ``OggPages`` holds back a page until its last byte is in.
"""

from __future__ import annotations

_RIFF_HEADER = 12  # "RIFF", size, "WAVE"
_CHUNK_HEADER = 8  # id, size
_OGG_HEADER = 27  # up to and including the segment count


class WavPayload:
    """Strips a WAV header from the front of a byte stream (bytes without one pass as they are)."""

    def __init__(self) -> None:
        self._head = b""
        self._done = False

    def feed(self, data: bytes) -> bytes:
        """The samples in ``data`` (may be empty while a header is still coming in)."""
        if self._done:
            return data
        head = self._head + data
        if len(head) < 4 and b"RIFF".startswith(head):
            self._head = head
            return b""
        if not head.startswith(b"RIFF"):
            self._done = True
            self._head = b""
            return head
        pos = _RIFF_HEADER
        while len(head) >= pos + _CHUNK_HEADER:
            chunk_id = head[pos : pos + 4]
            size = int.from_bytes(head[pos + 4 : pos + 8], "little")
            if chunk_id == b"data":
                self._done = True
                self._head = b""
                return head[pos + _CHUNK_HEADER :]
            pos += _CHUNK_HEADER + size + (size & 1)
        self._head = head
        return b""

    def finish(self) -> bytes:
        """Whatever was held back as a possible header that never completed (nothing, for real WAV)."""
        rest, self._head = (b"" if self._head.startswith(b"RIFF") else self._head), b""
        return rest


def wav_payload(data: bytes) -> bytes:
    """The samples of one whole WAV file (or ``data`` itself, if it has no header)."""
    strip = WavPayload()
    return strip.feed(data) + strip.finish()


class OggPages:
    """Passes an Ogg stream on in whole pages."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> bytes:
        """The whole pages completed by ``data``."""
        buf = self._buf + data
        end = 0
        while len(buf) >= end + _OGG_HEADER and buf.startswith(b"OggS", end):
            segments = buf[end + 26]
            table_end = end + _OGG_HEADER + segments
            if len(buf) < table_end:
                break
            page_end = table_end + sum(buf[end + _OGG_HEADER : table_end])
            if len(buf) < page_end:
                break
            end = page_end
        if end < len(buf) and len(buf) >= end + 4 and not buf.startswith(b"OggS", end):
            end = len(buf)  # not Ogg framing after all: pass it on rather than hold it forever
        out, self._buf = buf[:end], buf[end:]
        return out

    def finish(self) -> bytes:
        """The rest (an incomplete last page, if the stream was cut)."""
        out, self._buf = self._buf, b""
        return out
