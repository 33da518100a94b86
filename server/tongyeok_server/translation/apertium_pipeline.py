"""One persistent Apertium pipeline per language pair, in null-flush mode.

``echo text | apertium eng-spa`` starts about a dozen processes per call
(~300 ms). Instead we start the stages of the mode once, each with ``-z``
(flush on NUL), and feed them one request after another: a sentence then
takes a few milliseconds.

How a request travels (see ENGINE-NOTES, "Null-flush details"):

- The text deformatter (``apertium-destxt``) does not flush on NUL, so we
  skip it and escape the stream-format characters ourselves.
- Each request ends with a superblank marker ``[#ty<seq>]``, a newline (one
  middle stage, ``lt-proc -b``, waits for one more character before
  flushing) and a NUL. Superblanks pass through every stage untouched, so
  the marker tells us which request an answer belongs to; the answer is
  complete at the first NUL after its marker. Stages may add NULs of their
  own; stray ones are dropped. Output of a request that was abandoned
  (its caller cancelled) is recognised by its older marker and skipped.
- Requests on one pipeline are serialised by a lock; a stage that died is
  noticed on the next request, and the pipeline is started again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import grpc

from tongyeok_server.errors import ServiceError

log = logging.getLogger(__name__)

# The stream format's reserved characters (and the escape character itself).
_RESERVED = re.compile(r"([\[\]{}^$/\\@<>])")
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
_MARKER = re.compile(rb"\[#ty(\d+)\]")
# Control characters (NUL above all) would end or corrupt a request.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

# lt-proc's generation flag that omits the unknown-word marks (* # @).
NO_MARKS_GENERATOR_FLAG = "-n"

_READ_SIZE = 65536
_POLL_S = 0.05  # how often a waiting reader looks at its cancel flag


def _never() -> bool:
    return False


class Cancelled(Exception):
    """The caller cancelled while its request was waiting or in flight."""


def escape(text: str) -> str:
    """Make ``text`` safe to feed to the first stage.

    Control characters (newlines, NULs, tabs) become single spaces: a NUL
    would end the request early and the sentence needs no line structure.
    """
    return _RESERVED.sub(r"\\\1", _CONTROL.sub(" ", text))


def unescape(text: str) -> str:
    """Undo the stream-format escaping the stages keep on the way out."""
    return _ESCAPED.sub(r"\1", text)


def pipeline_stages(mode_file: Path, generator_flag: str = NO_MARKS_GENERATOR_FLAG) -> list[list[str]]:
    """Return the argv of each stage of ``mode_file`` in null-flush mode.

    ``apertium-wblank-mode -z`` prints the mode's shell pipeline with ``-z``
    on every stage; ``$1`` is the generator flag and ``$2`` the tagger option
    (left empty).
    """
    tool = shutil.which("apertium-wblank-mode")
    if tool is None:
        raise FileNotFoundError("apertium-wblank-mode not found on PATH (Debian package: apertium)")
    result = subprocess.run([tool, "-z", str(mode_file)], capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError(f"apertium-wblank-mode -z {mode_file} failed: {result.stderr.strip() or result.returncode}")
    lexer = shlex.shlex(result.stdout, posix=True, punctuation_chars="|")
    lexer.whitespace_split = True
    stages: list[list[str]] = [[]]
    for token in lexer:
        if token == "|":
            stages.append([])
        elif token == "$1":
            stages[-1].append(generator_flag)
        elif token == "$2":
            continue
        else:
            stages[-1].append(token)
    if any(not argv for argv in stages):
        raise RuntimeError(f"cannot parse the pipeline of {mode_file}: {result.stdout.strip()!r}")
    return stages


class ApertiumPipeline:
    """A running null-flush pipeline for one mode (e.g. ``eng-spa``), shared by all callers.

    ``translate`` may be called from any thread; requests run one at a time.
    The processes start on first use (or ``start()``) and again after a stage
    died.
    """

    def __init__(self, mode: str, mode_file: Path, *, generator_flag: str = NO_MARKS_GENERATOR_FLAG) -> None:
        self.mode = mode
        self.mode_file = mode_file
        self._generator_flag = generator_flag
        self._stages: list[list[str]] | None = None
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen[bytes]] = []
        self._stderr: IO[bytes] | None = None
        self._buffer = b""
        self._seq = 0
        self._closed = False
        self.starts = 0  # how many times the processes were started (tests, logs)

    # -- life cycle ---------------------------------------------------------

    @property
    def pids(self) -> list[int]:
        """Process ids of the running stages (empty when not running)."""
        return [p.pid for p in self._procs]

    def start(self) -> None:
        """Start the processes now (if not running) and let them load their data."""
        self.translate("Hello.")

    def close(self) -> None:
        """Stop the processes and wait for them; later requests fail."""
        with self._lock:
            self._closed = True
            self._stop()

    def _alive(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    def _spawn(self) -> None:
        """Start every stage, each reading the previous one's stdout. Caller holds the lock."""
        if self._stages is None:
            self._stages = pipeline_stages(self.mode_file, self._generator_flag)
        # One file collects every stage's stderr: read only to explain a failure,
        # and a file never blocks a stage the way an unread pipe would.
        self._stderr = tempfile.TemporaryFile(prefix=f"apertium-{self.mode}-")  # noqa: SIM115 - lives as long as the stages
        procs: list[subprocess.Popen[bytes]] = []
        upstream: IO[bytes] | None = None
        try:
            for argv in self._stages:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE if upstream is None else upstream,
                    stdout=subprocess.PIPE,
                    stderr=self._stderr,
                    # Own session: a Ctrl-C at the terminal reaches the server,
                    # which lets open translations finish, not the stages.
                    start_new_session=True,
                )
                if upstream is not None:
                    # The next stage holds its own copy; ours would keep the pipe open.
                    upstream.close()
                procs.append(proc)
                assert proc.stdout is not None
                upstream = proc.stdout
        except OSError as exc:
            self._procs = procs
            self._stop()
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE, f"apertium {self.mode}: cannot start the pipeline: {exc}"
            ) from exc
        self._procs = procs
        self._buffer = b""
        self.starts += 1
        log.info("apertium %s pipeline started (%d processes)", self.mode, len(procs))

    def _stop(self) -> None:
        """Terminate and reap every stage. Caller holds the lock (or is closing)."""
        procs, self._procs = self._procs, []
        if procs and procs[0].stdin is not None:
            with contextlib.suppress(OSError):
                procs[0].stdin.close()
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 2.0
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._buffer = b""

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 400))
            return self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    # -- requests -----------------------------------------------------------

    def translate(self, text: str, cancelled: Callable[[], bool] = _never, timeout_s: float | None = None) -> str:
        """Translate ``text`` and return the whole answer (unescaped, whitespace collapsed).

        ``cancelled`` is polled while waiting for the pipeline and for its
        answer; when it turns true, ``Cancelled`` is raised promptly. A stage
        that died is restarted and the request tried once more; a second
        failure raises ``ServiceError`` (UNAVAILABLE).
        """
        if timeout_s is None:
            # Generous: a long paragraph takes well under a second when healthy.
            timeout_s = 10.0 + len(text) / 500
        payload = escape(text)
        while not self._lock.acquire(timeout=_POLL_S):
            if cancelled():
                raise Cancelled
        try:
            for attempt in (1, 2):
                if self._closed:
                    raise ServiceError(grpc.StatusCode.UNAVAILABLE, f"apertium {self.mode}: the engine is shut down")
                if cancelled():
                    raise Cancelled
                if not self._alive():
                    if self._procs:
                        log.warning("apertium %s pipeline died (%s); restarting", self.mode, self._stderr_tail())
                        self._stop()
                    self._spawn()
                try:
                    return self._exchange(payload, cancelled, timeout_s)
                except (OSError, EOFError, TimeoutError) as exc:
                    detail = self._stderr_tail()
                    self._stop()
                    if attempt == 2 or isinstance(exc, TimeoutError):
                        reason = "no answer in time" if isinstance(exc, TimeoutError) else f"it failed ({exc})"
                        raise ServiceError(
                            grpc.StatusCode.UNAVAILABLE,
                            f"apertium {self.mode}: {reason}" + (f": {detail}" if detail else ""),
                        ) from exc
                    log.warning("apertium %s pipeline failed (%s); restarting and retrying", self.mode, exc)
            raise AssertionError("unreachable")
        finally:
            self._lock.release()

    def _exchange(self, payload: str, cancelled: Callable[[], bool], timeout_s: float) -> str:
        """Send one request and read its answer. Caller holds the lock and the pipeline runs."""
        self._seq += 1
        seq = self._seq
        data = f"{payload}[#ty{seq}]\n\0".encode()
        stdin = self._procs[0].stdin
        stdout = self._procs[-1].stdout
        assert stdin is not None and stdout is not None
        in_fd, out_fd = stdin.fileno(), stdout.fileno()
        deadline = time.monotonic() + timeout_s
        # Write and read together: a long text must not fill every pipe in the
        # chain while nobody drains the end of it. The request is always
        # written whole (even when cancelled) so the next one starts clean.
        view = memoryview(data)
        os.set_blocking(in_fd, False)
        try:
            while view:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                readable, writable, _ = select.select([out_fd], [in_fd], [], min(remaining, _POLL_S))
                if readable:
                    self._fill(out_fd)
                if writable:
                    with contextlib.suppress(BlockingIOError):
                        view = view[os.write(in_fd, view) :]
        finally:
            os.set_blocking(in_fd, True)
        while True:
            answer = self._take(seq)
            if answer is not None:
                return answer
            if cancelled():
                # The answer arrives later; the next request skips it by its marker.
                raise Cancelled
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            readable, _, _ = select.select([out_fd], [], [], min(remaining, _POLL_S))
            if readable:
                self._fill(out_fd)

    def _fill(self, fd: int) -> None:
        chunk = os.read(fd, _READ_SIZE)
        if not chunk:
            raise EOFError("the pipeline closed its output")
        self._buffer += chunk

    def _take(self, seq: int) -> str | None:
        """Cut the answer to request ``seq`` out of the buffer, if it is all there."""
        while True:
            match = _MARKER.search(self._buffer)
            if match is None:
                return None
            end = self._buffer.find(b"\0", match.end())
            if end < 0:
                return None
            found = int(match.group(1))
            raw = self._buffer[: match.start()] + self._buffer[match.end() : end]
            self._buffer = self._buffer[end + 1 :]
            if found == seq:
                text = unescape(raw.replace(b"\0", b"").decode("utf-8", "replace"))
                return " ".join(text.split())
            # An abandoned request's answer: drop it and look further.
