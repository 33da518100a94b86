"""A Google stream's failure accounting: the retry budget, the back-off, and what the caller is told.

After each Google call that did not end as planned, ``google_stream``'s run
task asks ``RetryBudget.recover`` what comes next (``google/status.py`` has
already said what the status means, ``Failure.action``):

- **RESTART** (Google's stream limit, OUT_OF_RANGE): reopen at once and
  resend the audio after the last final (``RECOGNIZER_RESTARTED``). A call
  that brought results and was then renewed is not a failure.
- **RETRY** (UNAVAILABLE and friends; RESOURCE_EXHAUSTED, Google's quota,
  with a longer back-off): wait a bounded exponential back-off, telling the
  caller first (``RECOGNIZER_RETRYING``, "no audio is lost"), then retry.
- **RECHECK** (the credential was refused): the first time, retry at once
  (the next call renews the credential itself, ``google/auth.py``, which
  then classifies the failure); again, like RETRY.
- **FAIL**, or more than ``max_retries`` failures in a row: the stream ends
  with ``Failure.ending``. Any result from Google resets the count.

The caller gets the cause in our words; Google's own message, which can name
the project or an address, goes only to the log (at WARNING, with the
session id).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from tongyeok_client.backoff import Backoff
from tongyeok_server.errors import ServiceError
from tongyeok_server.google.status import Action, Failure
from tongyeok_server.recognition.base import RecognitionEvent, RecognizerNotice, RecognizerNoticeKind
from tongyeok_server.recognition.google_call import StreamPolicy

log = logging.getLogger(__name__)


class RetryBudget:
    """Consecutive failed attempts of one stream, and what follows each (see the module)."""

    def __init__(self, policy: StreamPolicy, who: str, emit: Callable[[RecognitionEvent], None]) -> None:
        self._policy = policy
        self._who = who  # for log lines
        self._emit = emit
        self.failures = 0  # consecutive attempts that brought no result
        self.restarts = 0  # for tests and logs
        self.retries = 0

    def succeeded(self) -> None:
        """A call ended as planned: the count starts again."""
        self.failures = 0

    async def recover(self, failure: Failure, progress: bool, resend_s: float) -> ServiceError | None:
        """After a failed attempt: None to open the next call now, or the error that ends the stream.

        ``progress``: the call brought results before it failed. ``resend_s``:
        the audio the next call resends, for the caller's notice. Sleeps out
        a back-off when one is due (cancelling the task cancels the sleep).
        """
        policy = self._policy
        if progress:
            self.failures = 0
        # A renewal of a stream that brought results is not a failure.
        if not (failure.action is Action.RESTART and progress):
            self.failures += 1
        failures = self.failures
        if failure.action is Action.FAIL or failures > policy.max_retries:
            log.warning("%s: speech recognition ended: %s (%s)", self._who, failure.cause, failure.detail)
            return failure.ending(failures - 1 if failure.action is not Action.FAIL else 0)
        if failure.action is Action.RESTART:
            # Google's stream-duration (or audio-timeout) limit: reopen and resend at once.
            self.restarted("after Google ended it (its stream limit)", failure.detail, resend_s)
        elif failure.action is Action.RETRY or failures > 1:
            await self._back_off(failure, failures)
        else:  # RECHECK, the first time: the next attempt renews the credential itself
            log.info("%s: %s (%s); renewing the credential", self._who, failure.cause, failure.detail)
        return None

    def restarted(self, why: str, detail: str, resend_s: float) -> None:
        """Say that a new Google stream resends the audio after the last final (``why`` for the caller too)."""
        self.restarts += 1
        log.info("%s: Google stream renewed %s (%s); resending %.2f s of audio", self._who, why, detail, resend_s)
        self._emit(
            RecognizerNotice(
                RecognizerNoticeKind.RESTARTED,
                f"speech recognition stream renewed {why}; {resend_s:.1f} s of audio resent",
            )
        )

    async def _back_off(self, failure: Failure, attempt: int) -> None:
        """Tell the caller (RECOGNIZER_RETRYING) and the log, then wait before the next attempt."""
        policy = self._policy
        backoff = Backoff(policy.backoff_initial_s, policy.backoff_max_s)
        if failure.code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            backoff = Backoff(policy.quota_backoff_initial_s, policy.quota_backoff_max_s)
        delay = backoff.delay_s(attempt)
        self.retries += 1
        log.warning(
            "%s: %s (%s); retry %d of %d in %.1f s",
            self._who,
            failure.cause,
            failure.detail,
            attempt,
            policy.max_retries,
            delay,
        )
        self._emit(
            RecognizerNotice(
                RecognizerNoticeKind.RETRYING,
                f"speech recognition interrupted: {failure.cause}; "
                f"retrying in {delay:.1f} s (attempt {attempt} of {policy.max_retries}); no audio is lost",
            )
        )
        await asyncio.sleep(delay)
