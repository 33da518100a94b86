"""Where a resume goes: the session here, a moving session restored here, or the process that holds it.

Tokens come in two kinds (both sealed, see ``session/resume_token.py``):

- *live* (in ``session_started``): the session's id, its caller, and where
  it lives: its replica (``--advertise-address``) and its process's socket
  (``--processes``). A resume that lands there attaches; one that lands on
  another replica is relayed to the session's replica, and one that lands
  on another process of the right replica to the session's process (at most
  two hops: a resume landing on the wrong process of the wrong replica).
- *moving* (in a ``resume_token_update`` before a shutdown): also the
  session's config and its ``Continuation``; whichever server it lands on
  restores the session from it.

Checks, in order: the token opens (else INVALID_ARGUMENT: forged, altered,
or from another deployment), it belongs to the caller (else
PERMISSION_DENIED), the session is here or can be found (else NOT_FOUND,
saying whether it expired or ended), the events asked for are still kept
(else FAILED_PRECONDITION, before anything is attached or restored, so a
wrong number disturbs neither a stream still attached nor the server).

``last_sequence_number`` is the number of the last event the caller
received; 0 means none. ``session_started`` (number 1) is never sent again,
so on a session that started here 0 and 1 ask for the same events. A moved
session's events before its token's number were sent by the server before
(the caller who holds that token has received them), so only the token's
own number or a later one resumes it exactly.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.api.forwarding import FORWARDED_HEADER, Forwarder
from tongyeok_server.api.handlers import Undecodable
from tongyeok_server.auth.caller import Caller, current_caller
from tongyeok_server.errors import ServiceError, invalid_argument
from tongyeok_server.session.continuation import Continuation
from tongyeok_server.session.event_log import EventsNoLongerKept
from tongyeok_server.session.registry import Managed, SessionRegistry
from tongyeok_server.session.resume_token import InvalidResumeToken, ResumeTokens
from tongyeok_server.session.session import Session

log = logging.getLogger(__name__)

Metadata = Sequence[tuple[str, str | bytes]]
Restore = Callable[[bytes, str, Caller, Continuation], Managed]
Forwarded = Callable[[AsyncIterator[pb.InterpretRequest | Undecodable]], AsyncIterator[pb.InterpretResponse]]


@dataclass(frozen=True)
class Resumed:
    """The outcome of a resume: a session to attach, or a stream to forward."""

    managed: Managed | None
    forwarded: Forwarded | None
    last_sequence_number: int = 0  # the stream sends the events after it (the caller's, past numbers never resent)
    detached_for_s: float = 0.0
    moved: bool = False


def _not_found(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.NOT_FOUND, message)


class ResumeDesk:
    """Issues resume tokens and answers resumes (see the module docstring)."""

    def __init__(
        self, window_s: float, tokens: ResumeTokens, replica: str, process: str, forwarder: Forwarder | None
    ) -> None:
        self.window_s = window_s
        self._tokens = tokens
        self.replica = replica
        self.process = process
        self._forwarder = forwarder
        self._registry: SessionRegistry | None = None

    def bind(self, registry: SessionRegistry) -> None:
        """The registry of this process's sessions."""
        self._registry = registry

    def live_token(self, session: Session) -> str:
        """The token of ``session_started``."""
        return self._tokens.seal(
            {
                "k": "live",
                "sid": session.id,
                "caller": session.caller.id,
                "rep": self.replica,
                "proc": self.process,
                "iat": time.time(),
            }
        )

    def moving_token(self, session: Session, config: bytes, continuation: Continuation) -> str:
        """The token that lets another server continue ``session`` (after this one shut down)."""
        return self._tokens.seal(
            {
                "k": "moved",
                "sid": session.id,
                "caller": session.caller.id,
                "iat": time.time(),
                "config": base64.b64encode(config).decode(),
                "next_utterance_id": continuation.next_utterance_id,
                "next_sequence_number": continuation.next_sequence_number,
                "audio_bytes": continuation.audio_bytes,
                "history": continuation.history,
                "committed": continuation.committed,
            }
        )

    async def resume(self, request: pb.ResumeRequest, restore: Restore, metadata: Metadata) -> Resumed:
        """Find the session ``request`` resumes (see the module docstring); raises ``ServiceError``.

        ``metadata`` is the stream's gRPC metadata (a relay passes the caller's ``authorization`` on).
        """
        assert self._registry is not None
        if self.window_s <= 0:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION, "this server does not resume sessions (--resume-window 0)"
            )
        try:
            claims = self._tokens.open(request.resume_token)
        except InvalidResumeToken:
            raise invalid_argument(
                "resume.resume_token is not a resume token this service issued (forged, altered, cut short, or from "
                "another deployment); resume with the token of session_started or of the last resume_token_update"
            ) from None
        caller = current_caller()
        owner = claims.get("caller")
        if owner != caller.id and not (caller.legacy_id and owner == caller.legacy_id):
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                "resume.resume_token belongs to a session of another caller; resume with your own credentials",
            )
        session_id = str(claims.get("sid", ""))
        if caller.relayed_for and caller.relayed_for != session_id:
            raise ServiceError(  # another process vouched for this caller to resume one session, not this one
                grpc.StatusCode.PERMISSION_DENIED, "this relayed stream may resume only the session it was relayed for"
            )
        last = request.last_sequence_number
        managed = self._registry.get(session_id)
        if managed is not None:
            after = _check_sequence(managed, last)
            return Resumed(managed, None, after, self._registry.detached_for(managed))
        ended = self._registry.why_ended(session_id)
        if claims.get("k") == "moved" and ended is None:
            age = time.time() - float(claims.get("iat", 0))
            if age > self.window_s:
                raise _not_found(
                    f"session {session_id} moved when its server shut down {age:.0f} s ago, longer than its resume "
                    f"window of {self.window_s:g} s; start a new session"
                )
            continuation = Continuation(
                int(claims["next_utterance_id"]),
                int(claims["next_sequence_number"]),
                int(claims["audio_bytes"]),
                list(claims.get("history", [])),
                {str(k): str(v) for k, v in dict(claims.get("committed", {})).items()},
            )
            # Checked before restoring: a session restored and then refused would be held by nobody.
            _check_moved_sequence(continuation.next_sequence_number, last)
            owner_caller = dataclasses.replace(caller, relayed_for="")  # the session's caller, not the relay's
            managed = restore(base64.b64decode(claims["config"]), session_id, owner_caller, continuation)
            return Resumed(managed, None, last, age, moved=True)
        target = self._where(claims)
        hops = _hops(metadata)
        if target and self._forwarder is not None and hops < MAX_HOPS:
            log.info("session %s is held by %s; relaying the resume there", session_id, target)
            return Resumed(
                None,
                self._forwarder.stream(
                    target, pb.InterpretRequest(resume=request), metadata, hops + 1, caller, session_id
                ),
            )
        if ended is not None and ended[0] == "expired":
            raise _not_found(
                f"session {session_id} was not resumed within its resume window of {self.window_s:g} s and was "
                f"finished {ended[1]:.0f} s ago; start a new session"
            )
        if ended is not None:
            raise _not_found(f"session {session_id} has ended ({ended[0]}); start a new session")
        raise _not_found(
            f"session {session_id} is not held any more (it ended, it was not resumed within its resume window of "
            f"{self.window_s:g} s, or its server went away); start a new session"
        )

    def _where(self, claims: dict[str, Any]) -> str:
        """Where to relay a resume of a session not held here ("" when it should have been here)."""
        replica, process = str(claims.get("rep", "")), str(claims.get("proc", ""))
        if replica and replica != self.replica:
            return replica
        if process and process != self.process:
            return process
        return ""


MAX_HOPS = 2


def _hops(metadata: Metadata) -> int:
    for key, value in metadata:
        if key == FORWARDED_HEADER:
            try:
                return int(value)
            except (TypeError, ValueError):
                return MAX_HOPS
    return 0


def events_not_kept(after: int, oldest: int) -> ServiceError:
    """The refusal of a resume (or a reader fallen behind) whose events after ``after`` this server cannot send."""
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"the events after {after} are no longer kept here (the first this server can send again is {oldest}); "
        f"resume with last_sequence_number {oldest - 1} to go on without them, or start a new session",
    )


def _out_of_range(last: int, newest: int) -> ServiceError:
    return invalid_argument(
        f"resume.last_sequence_number is {last}, but the session's newest event is {newest}; send the "
        "sequence_number of the last event received (0 if none)"
    )


def _check_sequence(managed: Managed, last: int) -> int:
    """The number the stream reads after (past a reserved ``session_started``), if ``last`` can be resumed exactly."""
    log = managed.session.log
    if last < 0 or last > log.last_sequence_number:
        raise _out_of_range(last, log.last_sequence_number)
    try:
        return log.check_readable(last)
    except EventsNoLongerKept as gone:
        raise events_not_kept(last, gone.oldest) from None


def _check_moved_sequence(next_sequence_number: int, last: int) -> None:
    """A moved session starts here with nothing kept: its token's number (``next - 1``) is the only exact resume."""
    if last < 0 or last >= next_sequence_number:
        raise _out_of_range(last, next_sequence_number - 1)
    if last < next_sequence_number - 1:
        raise events_not_kept(last, next_sequence_number)
