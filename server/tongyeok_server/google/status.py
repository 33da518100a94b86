"""What a failed Google Cloud call means: what to do next, and in whose words.

Shared by Speech-to-Text (``from_status``) and Text-to-Speech
(``synthesis/google_engine.py``, through ``common_failure``): the statuses
both APIs give alike are classified once, in the words of the API named.

Google's own message often names the inside of the service: the project
("for consumer 'project_number:...'", "projects/acme/locations/global/...")
or, for a connection failure, an address ("ipv4:10.0.0.7:443: Connection
refused"). It goes to the server's log (``Failure.detail``); the caller gets
the cause in our words (``Failure.cause``): Google's status, what failed,
and what to do.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import grpc

from tongyeok_server.errors import ServiceError


def credential_advice(api: str = "Speech-to-Text") -> str:
    """What the operator must check when Google refuses the server's credentials for ``api``."""
    return (
        "the operator must check the server's Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS or "
        f"`gcloud auth application-default login`), --google-project, and that the account may use the {api} API"
    )


CREDENTIAL_ADVICE = credential_advice()

# grpc's words when a call-credentials plugin raised (the token could not be had):
# the call never reached Google, and its status is UNAVAILABLE whatever the cause.
PLUGIN_FAILED = "Getting metadata from plugin failed"

# Statuses that say the call broke, not that it was wrong.
_TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)


class Action(enum.Enum):
    """What the stream does after a failed call."""

    RESTART = "restart"  # reopen at once and resend (Google's stream limits); no back-off
    RETRY = "retry"  # transient: back off, reopen, resend, tell the caller (RECOGNIZER_RETRYING)
    RECHECK = "recheck"  # the credential plugin failed: renew the credential ourselves, at once
    FAIL = "fail"  # end the stream with ``code``


@dataclass(frozen=True)
class Failure:
    """One failed attempt: what to do, the caller's words, the log's words."""

    action: Action
    code: grpc.StatusCode  # the status the caller gets if this ends the stream
    cause: str  # for the caller: what failed, with Google's status name; no address, project or upstream words
    advice: str = ""  # for the caller, when it ends the stream: what to do
    detail: str = ""  # for the server's log only: Google's (or the token service's) own words

    def ending(self, retries: int = 0) -> ServiceError:
        """The error that ends the stream (``retries``: how many were spent on it)."""
        spent = f", still after {retries} retries" if retries else ""
        advice = f": {self.advice}" if self.advice else ""
        return ServiceError(self.code, f"{self.cause}{spent}{advice}", detail=self.detail)


def from_status(code: grpc.StatusCode, details: str, languages: tuple[str, ...]) -> Failure:
    """Classify how one Google Speech-to-Text call ended (``languages``: what the stream asked for, to name in a rejection)."""
    name = code.name
    if code is grpc.StatusCode.OUT_OF_RANGE or code is grpc.StatusCode.OK:
        # Google's stream-duration (or audio-timeout) limit: reopen and resend.
        return Failure(
            Action.RESTART,
            grpc.StatusCode.UNAVAILABLE,
            f"Google Speech-to-Text keeps ending its streams before any result ({name})",
            "try again shortly",
            details,
        )
    if code is grpc.StatusCode.NOT_FOUND:
        # The server's recogniser or project is wrong: not the caller's fault, and not retryable.
        return Failure(
            Action.FAIL,
            grpc.StatusCode.FAILED_PRECONDITION,
            "Google Speech-to-Text does not know the server's recognizer (NOT_FOUND)",
            "the operator must check --google-project, --google-location and --google-recognizer",
            details,
        )
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return Failure(
            Action.FAIL,
            code,
            f"Google Speech-to-Text rejected the stream's recognition settings (INVALID_ARGUMENT) for languages "
            f"{', '.join(languages)}",
            "check that each is a locale Google Speech-to-Text recognises; Google's own words are in the server log",
            details,
        )
    return common_failure(code, details, "Speech-to-Text", "speech recogniser")


def common_failure(code: grpc.StatusCode, details: str, api: str, role: str) -> Failure:
    """What the statuses every Google Cloud API gives alike mean (``api``: "Speech-to-Text"; ``role``: "speech recogniser")."""
    name = code.name
    if code is grpc.StatusCode.UNAVAILABLE and details.startswith(PLUGIN_FAILED):
        # The rest of grpc's words is the plugin's exception, which can quote the
        # token service's whole answer; the engine's own renewal says what failed.
        return Failure(
            Action.RECHECK,
            grpc.StatusCode.UNAVAILABLE,
            "the server could not get a token for its Google Cloud credential",
            "try again shortly",
            PLUGIN_FAILED,
        )
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return Failure(
            Action.RETRY,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the {role}'s Google Cloud quota is used up (RESOURCE_EXHAUSTED from Google {api}; not this server's "
            "capacity)",
            f"try again in a minute; the operator can raise the {api} quota of the server's project",
            details,
        )
    if code in _TRANSIENT:
        return Failure(
            Action.RETRY, grpc.StatusCode.UNAVAILABLE, f"Google {api} failed ({name})", "try again shortly", details
        )
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return Failure(
            Action.FAIL,
            code,
            f"Google {api} refused the server's credentials ({name})",
            credential_advice(api),
            details,
        )
    if code is grpc.StatusCode.CANCELLED:
        # Not by our caller (that ends the stream without a status): the engine
        # closed its channels, which it does when the server stops.
        return Failure(
            Action.FAIL,
            grpc.StatusCode.UNAVAILABLE,
            f"the call to Google {api} was closed on the server (it is stopping)",
            "reconnect",
            details,
        )
    return Failure(
        Action.FAIL, code, f"Google {api} failed ({name})", "Google's own words are in the server log", details
    )
