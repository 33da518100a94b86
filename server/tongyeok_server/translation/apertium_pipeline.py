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
- On the server's event loop: the first stage's stdin is a write transport
  and the last stage's stdout a read transport with a small protocol that
  cuts answers out and resolves each request's future, so requests from
  many sessions are pipelined (no lock, no thread per request) and a
  cancelled request costs nothing but its answer, skipped when it comes.
  A stage that died is noticed (the output ends, or a stage has exited
  before a request) and the pipeline started again; starting and stopping
  the processes (fork, exec, wait) happens on a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
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


class _Answers(asyncio.Protocol):
    """The last stage's output: cuts each answer out by its marker and resolves that request's future."""

    def __init__(self, pending: dict[int, asyncio.Future[str]]) -> None:
        self._pending = pending
        self._buffer = b""
        self.lost: BaseException | None = None  # why the output ended (the pipeline is then dead)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            match = _MARKER.search(self._buffer)
            if match is None:
                return
            end = self._buffer.find(b"\0", match.end())
            if end < 0:
                return
            raw = self._buffer[: match.start()] + self._buffer[match.end() : end]
            self._buffer = self._buffer[end + 1 :]
            future = self._pending.pop(int(match.group(1)), None)
            if future is not None and not future.done():  # None: a cancelled request's answer, skipped
                text = unescape(raw.replace(b"\0", b"").decode("utf-8", "replace"))
                future.set_result(" ".join(text.split()))

    def eof_received(self) -> bool:
        self.connection_lost(EOFError("the pipeline closed its output"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            self.lost = exc or EOFError("the pipeline closed its output")
        pending = list(self._pending.values())
        self._pending.clear()
        for future in pending:
            if not future.done():
                future.set_exception(self.lost)


class _Running:
    """One start of the pipeline: its processes and the loop-side ends of its pipes."""

    def __init__(
        self,
        procs: list[subprocess.Popen[bytes]],
        stderr: IO[bytes],
        loop: asyncio.AbstractEventLoop,
        writer: asyncio.WriteTransport,
        reader: asyncio.ReadTransport,
        answers: _Answers,
        pending: dict[int, asyncio.Future[str]],
    ) -> None:
        self.procs = procs
        self.stderr = stderr
        self.loop = loop
        self.writer = writer
        self.reader = reader
        self.answers = answers
        self.pending = pending

    def alive(self) -> bool:
        # A waitpid per stage (~1 us each): catches a dead stage before its request is lost in it.
        return self.answers.lost is None and not self.writer.is_closing() and all(p.poll() is None for p in self.procs)

    def detach(self) -> None:
        """Close the loop's ends (on the loop); fail what is pending."""
        self.writer.close()
        self.reader.close()
        self.answers.connection_lost(EOFError("the pipeline was stopped"))

    def stderr_tail(self) -> str:
        try:
            self.stderr.seek(0, os.SEEK_END)
            size = self.stderr.tell()
            self.stderr.seek(max(0, size - 400))
            return self.stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""


class ApertiumPipeline:
    """A running null-flush pipeline for one mode (e.g. ``eng-spa``), shared by all sessions of a loop.

    ``translate`` is a coroutine on the server's loop; requests are
    pipelined. The processes start on first use (or ``start()``) and again
    after a stage died, or when used from another loop (tests).
    """

    def __init__(self, mode: str, mode_file: Path, *, generator_flag: str = NO_MARKS_GENERATOR_FLAG) -> None:
        self.mode = mode
        self.mode_file = mode_file
        self._generator_flag = generator_flag
        self._stages: list[list[str]] | None = None
        self._running: _Running | None = None
        self._starting: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._seq = 0
        self._closed = False
        self.starts = 0  # how many times the processes were started (tests, logs)

    # -- life cycle ---------------------------------------------------------

    @property
    def pids(self) -> list[int]:
        """Process ids of the running stages (empty when not running)."""
        return [p.pid for p in self._running.procs] if self._running is not None else []

    async def start(self) -> None:
        """Start the processes now (if not running) and let them load their data."""
        await self.translate("Hello.")

    async def close(self) -> None:
        """Stop the processes and wait for them; later requests fail."""
        self._closed = True
        await self._stop()

    async def _stop(self) -> None:
        running, self._running = self._running, None
        if running is None:
            return
        if running.loop is asyncio.get_running_loop():
            running.detach()
        await asyncio.to_thread(_reap, running.procs, running.stderr)

    async def _ready(self) -> _Running:
        """The running pipeline, started (again) if need be."""
        loop = asyncio.get_running_loop()
        if self._starting is None or self._starting[0] is not loop:
            self._starting = (loop, asyncio.Lock())  # a lock belongs to one loop
        async with self._starting[1]:  # one start at a time; the others wait for it and use it
            if self._closed:
                raise ServiceError(grpc.StatusCode.UNAVAILABLE, f"apertium {self.mode}: the engine is shut down")
            running = self._running
            if running is not None and running.loop is loop and running.alive():
                return running
            if running is not None:  # dead, or started on another loop (its transports are that loop's)
                if running.loop is loop:
                    log.warning("apertium %s pipeline died (%s); restarting", self.mode, running.stderr_tail())
                await self._stop()
            if self._stages is None:
                self._stages = await asyncio.to_thread(pipeline_stages, self.mode_file, self._generator_flag)
            procs, stderr = await asyncio.to_thread(_spawn, self._stages, self.mode)
            try:
                pending: dict[int, asyncio.Future[str]] = {}
                answers = _Answers(pending)
                assert procs[0].stdin is not None and procs[-1].stdout is not None
                writer, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, procs[0].stdin)
                reader, _ = await loop.connect_read_pipe(lambda: answers, procs[-1].stdout)
            except BaseException:
                await asyncio.to_thread(_reap, procs, stderr)
                raise
            self._running = _Running(procs, stderr, loop, writer, reader, answers, pending)
            self.starts += 1
            log.info("apertium %s pipeline started (%d processes)", self.mode, len(procs))
            return self._running

    # -- requests -----------------------------------------------------------

    async def translate(self, text: str, timeout_s: float | None = None) -> str:
        """Translate ``text`` and return the whole answer (unescaped, whitespace collapsed).

        Cancelling the caller's task abandons the request (its answer is
        skipped when it comes). A stage that died is restarted and the
        request tried once more; a second failure, or no answer within
        ``timeout_s``, raises ``ServiceError`` (UNAVAILABLE).
        """
        if timeout_s is None:
            # Generous: a long paragraph takes well under a second when healthy.
            timeout_s = 10.0 + len(text) / 500
        data = escape(text)
        for attempt in (1, 2):
            running = await self._ready()
            self._seq += 1
            seq = self._seq
            future: asyncio.Future[str] = running.loop.create_future()
            running.pending[seq] = future
            # Written whole (the transport buffers it), so the next request always starts clean.
            running.writer.write(f"{data}[#ty{seq}]\n\0".encode())
            try:
                async with asyncio.timeout(timeout_s):
                    return await future
            except TimeoutError:
                detail = running.stderr_tail()
                await self._stop_if(running)
                raise ServiceError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"apertium {self.mode}: no answer in time" + (f": {detail}" if detail else ""),
                ) from None
            except (OSError, EOFError) as exc:
                detail = running.stderr_tail()
                await self._stop_if(running)
                if attempt == 2:
                    raise ServiceError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"apertium {self.mode}: it failed ({exc})" + (f": {detail}" if detail else ""),
                    ) from exc
                log.warning("apertium %s pipeline failed (%s); restarting and retrying", self.mode, exc)
            finally:
                running.pending.pop(seq, None)
        raise AssertionError("unreachable")

    async def _stop_if(self, running: _Running) -> None:
        """Stop ``running`` unless another request already replaced it."""
        if self._running is running:
            await self._stop()


def _spawn(stages: list[list[str]], mode: str) -> tuple[list[subprocess.Popen[bytes]], IO[bytes]]:
    """Start every stage, each reading the previous one's stdout (blocking: fork and exec, on a worker thread)."""
    # One file collects every stage's stderr: read only to explain a failure,
    # and a file never blocks a stage the way an unread pipe would.
    stderr = tempfile.TemporaryFile(prefix=f"apertium-{mode}-")  # noqa: SIM115 - lives as long as the stages
    procs: list[subprocess.Popen[bytes]] = []
    upstream: IO[bytes] | None = None
    try:
        for argv in stages:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if upstream is None else upstream,
                stdout=subprocess.PIPE,
                stderr=stderr,
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
        _reap(procs, stderr)
        raise ServiceError(grpc.StatusCode.UNAVAILABLE, f"apertium {mode}: cannot start the pipeline: {exc}") from exc
    return procs, stderr


def _reap(procs: list[subprocess.Popen[bytes]], stderr: IO[bytes]) -> None:
    """Terminate and wait for every stage (blocking, up to ~2 s: on a worker thread)."""
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
            with contextlib.suppress(OSError):
                proc.stdout.close()
    stderr.close()
