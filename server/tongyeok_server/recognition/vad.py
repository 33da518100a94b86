"""Cutting a stream of 16 kHz PCM into utterances with WebRTC's voice-activity detector.

A recogniser that is not streaming (Whisper) decodes whole stretches of
speech; this segmenter decides where they start and end. ``webrtcvad``
(the ``webrtcvad-wheels`` package, MIT) classifies 30 ms frames as speech
or not, for about 0.2 ms of CPU per second of audio; the segmenter smooths
those decisions over a window (speech starts once ``ratio`` of the last
``start_window_s`` is voiced, and ends once ``ratio`` of the last
``end_window_s`` is not) and keeps a pre-roll: the utterance's audio
begins ``preroll_s`` before the first voiced frame of the window that
started it, so the soft start of a first word is not cut off.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

SAMPLE_RATE_HZ = 16000
FRAME_SAMPLES = 480  # 30 ms, one of the frame lengths webrtcvad takes
_FRAME_BYTES = FRAME_SAMPLES * 2


@dataclass(frozen=True)
class SpeechStarted:
    """An utterance began ``start_sample`` samples into the stream (pre-roll included)."""

    start_sample: int


@dataclass(frozen=True)
class SpeechEnded:
    """The open utterance ended at ``end_sample``; ``audio`` is all of it (16 kHz PCM)."""

    start_sample: int
    end_sample: int
    audio: bytes
    voiced_until: int  # the end of the utterance's last voiced frame (samples into the stream)


SegmentEvent = SpeechStarted | SpeechEnded


class Segmenter:
    """Stateful VAD segmentation of one stream; feed PCM, get start and end events."""

    def __init__(
        self,
        *,
        mode: int = 2,
        start_window_s: float = 0.3,
        end_window_s: float = 0.5,
        ratio: float = 0.9,
        preroll_s: float = 0.3,
        max_utterance_s: float = 20.0,
    ) -> None:
        import webrtcvad

        self._vad = webrtcvad.Vad(mode)
        self._start_frames = max(1, round(start_window_s * SAMPLE_RATE_HZ / FRAME_SAMPLES))
        self._end_frames = max(1, round(end_window_s * SAMPLE_RATE_HZ / FRAME_SAMPLES))
        self._ratio = ratio
        self._preroll_samples = int(preroll_s * SAMPLE_RATE_HZ)
        self._max_samples = int(max_utterance_s * SAMPLE_RATE_HZ)
        self._pending = bytearray()
        self._decisions: deque[bool] = deque(maxlen=max(self._start_frames, self._end_frames))
        # Audio not yet in an utterance, kept for the pre-roll and the start window.
        self._recent = bytearray()
        self._recent_limit = (self._start_frames * FRAME_SAMPLES + self._preroll_samples) * 2
        self.samples_in = 0
        self.utterance: bytearray | None = None  # the open utterance's audio, while in speech
        self.utterance_start = 0
        self.voiced_until = 0  # where the last voiced frame of the open utterance ended

    @property
    def quiet_s(self) -> float:
        """How long the open utterance has been unvoiced (0 when it is not open or someone is speaking)."""
        return 0.0 if self.utterance is None else (self.samples_in - self.voiced_until) / SAMPLE_RATE_HZ

    @property
    def in_speech(self) -> bool:
        """Whether an utterance is open."""
        return self.utterance is not None

    def feed(self, pcm: bytes) -> list[SegmentEvent]:
        """Take 16 kHz mono PCM (any length); the starts and ends it completes, in order."""
        self._pending += pcm
        events: list[SegmentEvent] = []
        while len(self._pending) >= _FRAME_BYTES:
            frame = bytes(self._pending[:_FRAME_BYTES])
            del self._pending[:_FRAME_BYTES]
            self._frame(frame, events)
        return events

    def flush(self) -> list[SegmentEvent]:
        """End of the stream: the open utterance (with what is left of the audio) ends here."""
        if self.utterance is None:
            return []
        self.utterance += self._pending
        self.samples_in += len(self._pending) // 2
        self._pending.clear()
        return [self._end(self.samples_in)]

    def _frame(self, frame: bytes, events: list[SegmentEvent]) -> None:
        voiced = self._vad.is_speech(frame, SAMPLE_RATE_HZ)
        self._decisions.append(voiced)
        self.samples_in += FRAME_SAMPLES
        if self.utterance is None:
            self._recent += frame
            del self._recent[: -self._recent_limit]
            window = list(self._decisions)[-self._start_frames :]
            if len(window) == self._start_frames and sum(window) >= self._ratio * self._start_frames:
                # The utterance starts at the window's first voiced frame, less the pre-roll.
                first_voiced = window.index(True)
                start = self.samples_in - (self._start_frames - first_voiced) * FRAME_SAMPLES - self._preroll_samples
                recent_start = self.samples_in - len(self._recent) // 2
                start = max(start, recent_start, 0)
                self.utterance = bytearray(self._recent[(start - recent_start) * 2 :])
                self.utterance_start = start
                self.voiced_until = self.samples_in
                self._recent.clear()
                self._decisions.clear()
                events.append(SpeechStarted(start))
            return
        self.utterance += frame
        if voiced:
            self.voiced_until = self.samples_in
        window = list(self._decisions)[-self._end_frames :]
        if len(window) == self._end_frames and window.count(False) >= self._ratio * self._end_frames:
            # The speech ended where the window's silence began; the audio keeps that silence
            # (Whisper hears the end of a sentence better with some quiet after it).
            last_voiced = len(window) - 1 - window[::-1].index(True) if True in window else -1
            end = self.samples_in - (self._end_frames - 1 - last_voiced) * FRAME_SAMPLES
            events.append(self._end(end))
            self._decisions.clear()
        elif self.samples_in - self.utterance_start >= self._max_samples:
            # Someone speaking this long without a pause still gets finals (and Whisper sees at most 30 s).
            events.append(self._end(self.samples_in))
            events.append(SpeechStarted(self.samples_in))
            self.utterance = bytearray()
            self.utterance_start = self.voiced_until = self.samples_in

    def _end(self, end_sample: int) -> SpeechEnded:
        audio = bytes(self.utterance or b"")
        event = SpeechEnded(self.utterance_start, end_sample, audio, self.voiced_until)
        self.utterance = None
        return event
