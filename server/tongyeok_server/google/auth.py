"""The server's Google Cloud credential: renewed by the engine before a call needs it, not by gRPC's plugin.

Left to itself, gRPC asks the credential for a token in its metadata plugin,
on a thread of its own, at the start of every call. When the credential
cannot be renewed (a user's refresh token expired or revoked: the token
service answers ``invalid_grant``), the plugin raises, ``grpc._plugin_wrapping``
logs a traceback quoting the token service's answer, and the call ends with
UNAVAILABLE ("Getting metadata from plugin failed with error: ..."), which
reads like an outage: every stream retried it five times, asking the token
service each time, and then told its caller to retry an outage.

So the engine renews the credential itself before it opens a call, whenever
the credential is not valid (no token yet, or one that expires within
google-auth's refresh margin, the test its plugin makes): in a worker thread
(the refresh is blocking HTTP), one refresh at a time for all streams, with
a bounded timeout. It then sees google-auth's own exception and can tell a
refusal (``RefreshError`` not retryable: UNAUTHENTICATED, no retry, a
message saying what the operator must do) from a token service that did not
answer (``TransportError``, a retryable ``RefreshError``: retried like an
outage). The plugin then finds a valid token and does nothing but add it.

Should the plugin still fail (a token that expired between the check and
the call), the stream sees the plugin's status (``status.PLUGIN_FAILED``)
and renews the credential itself at once, which classifies the failure; and
``quiet_plugin_tracebacks`` keeps that plugin's traceback for a google-auth
error out of the log (the engine reports the failure itself, once, with the
session id).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import Credentials
from google.auth.transport.requests import Request

from tongyeok_server.errors import ServiceError, StartError
from tongyeok_server.google.status import Action, Failure

log = logging.getLogger(__name__)

# A token service that has not answered in this long will not answer in time for live speech.
REFRESH_TIMEOUT_S = 10.0

REFUSED_ADVICE = (
    "the operator must renew it (run `gcloud auth application-default login` on the server host, or set "
    "GOOGLE_APPLICATION_CREDENTIALS to a valid service-account key) and restart the server"
)

_OAUTH_ERROR = re.compile(r"[a-z_]{1,40}")
_PLUGIN_LOGGER = "grpc._plugin_wrapping"


MISSING_CREDENTIALS = (
    "Google Cloud credentials are not set up on the server: set GOOGLE_APPLICATION_CREDENTIALS to a "
    "service-account key file, or run `gcloud auth application-default login` on the server host, "
    "then restart the server"
)
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class _TimedRequest(Request):
    """google-auth's HTTP transport with a timeout of ours instead of its 120 s."""

    def __call__(
        self,
        url: Any,
        method: Any = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = REFRESH_TIMEOUT_S,
        **kwargs: Any,
    ) -> Any:
        return super().__call__(url, method, body, headers, timeout, **kwargs)  # type: ignore[no-untyped-call]


class CredentialKeeper:
    """Renews one credential, off the event loop, one refresh at a time for every stream that needs it."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._request = _TimedRequest()
        self._lock = threading.Lock()
        self._refreshing: asyncio.Future[Failure | None] | None = None  # on the loop that started it

    @property
    def credentials(self) -> Credentials:
        """The credential (the very object the channels' plugin reads its token from)."""
        return self._credentials

    async def ensure_valid(self) -> Failure | None:
        """Renew the credential if it is not valid; the failure if that failed, else None."""
        if self._credentials.valid:
            return None
        loop = asyncio.get_running_loop()
        refreshing = self._refreshing
        if refreshing is None or refreshing.done() or refreshing.get_loop() is not loop:
            refreshing = self._refreshing = loop.run_in_executor(None, self._refresh)
        # Shielded: a stream cancelled while it waits must not cancel the others' refresh.
        return await asyncio.shield(refreshing)

    def _refresh(self) -> Failure | None:
        """Refresh now (a worker thread): None, or what the failure means."""
        with self._lock:
            if self._credentials.valid:  # another loop's refresh got there first
                return None
            try:
                self._credentials.refresh(self._request)  # type: ignore[no-untyped-call]
            except auth_exceptions.GoogleAuthError as exc:
                return classify(exc)
        return None


def classify(exc: auth_exceptions.GoogleAuthError) -> Failure:
    """What a failed refresh means for a stream, and the words for the caller and for the log.

    The log gets the exception's first argument (google-auth's summary, e.g.
    "invalid_grant: Token has been expired or revoked."), never the second,
    which is the token service's whole answer and can quote a token.
    """
    summary = str(exc.args[0]) if exc.args else ""
    detail = f"{type(exc).__name__}: {summary[:300]}"
    if isinstance(exc, auth_exceptions.TransportError) or (
        isinstance(exc, auth_exceptions.RefreshError) and exc.retryable
    ):
        return Failure(
            Action.RETRY,
            grpc.StatusCode.UNAVAILABLE,
            "the server could not renew its Google Cloud credential (the token service did not answer)",
            "try again shortly",
            detail,
        )
    answer = exc.args[1] if len(exc.args) > 1 else None
    error = answer.get("error") if isinstance(answer, dict) else None
    code = f" ({error})" if isinstance(error, str) and _OAUTH_ERROR.fullmatch(error) else ""
    return Failure(
        Action.FAIL,
        grpc.StatusCode.UNAUTHENTICATED,
        f"the server's Google Cloud credential was refused when it was renewed{code}",
        REFUSED_ADVICE,
        detail,
    )


class _PluginTracebackFilter(logging.Filter):
    """Drops ``grpc._plugin_wrapping``'s traceback for a google-auth error (the engine reports those itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, auth_exceptions.GoogleAuthError):
            log.debug("the credential plugin failed (%s); the stream renews the credential itself", type(exc).__name__)
            return False
        return True


def quiet_plugin_tracebacks() -> None:
    """Install the filter on ``grpc._plugin_wrapping`` (once per process)."""
    plugin_log = logging.getLogger(_PLUGIN_LOGGER)
    if not any(isinstance(f, _PluginTracebackFilter) for f in plugin_log.filters):
        plugin_log.addFilter(_PluginTracebackFilter())


def load_credentials(
    credentials: Credentials | None, engine: str
) -> tuple[CredentialKeeper | None, str, ServiceError | None]:
    """Application Default Credentials (or ``credentials``) for an engine of ``engine`` ("google recognizer").

    Returns the keeper that renews them, the project the credentials name
    ("" if none), and the problem to report on every call instead of a crash
    at start-up (None when they loaded).
    """
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError
    from google.oauth2 import service_account

    project = ""
    if credentials is None:
        try:
            credentials, adc_project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        except DefaultCredentialsError as exc:
            # The exception text can quote a key file; log only its type.
            log.warning("%s: %s (%s)", engine, MISSING_CREDENTIALS, type(exc).__name__)
            return None, "", ServiceError(grpc.StatusCode.UNAUTHENTICATED, MISSING_CREDENTIALS)
        project = adc_project or ""
    if isinstance(credentials, service_account.Credentials):
        # What a transport would do per channel (a self-signed JWT, no token
        # exchange), done once so that every channel shares this credential.
        credentials = credentials.with_always_use_jwt_access(True)  # type: ignore[no-untyped-call]
    quiet_plugin_tracebacks()
    return CredentialKeeper(credentials), project, None


def transport_factory(
    transport_cls: Any, ssl_credentials: grpc.ChannelCredentials | None, options: Sequence[tuple[str, Any]] = ()
) -> Callable[..., Any]:
    """A generated client's ``grpc_asyncio`` transport that reads the very credential the keeper renews.

    ``always_use_jwt_access`` is turned off because ``load_credentials`` has
    applied it already: the transport would otherwise copy a service-account
    credential per channel, and the credential the engine renews would not be
    the one the channels' plugin reads. ``options`` are added to the channel's.
    """

    def make_transport(**kwargs: Any) -> Any:
        def make_channel(*args: Any, options: Sequence[tuple[str, Any]] = (), **channel_kwargs: Any) -> Any:
            return transport_cls.create_channel(*args, options=[*options, *extra], **channel_kwargs)

        kwargs["always_use_jwt_access"] = False
        return transport_cls(channel=make_channel, ssl_channel_credentials=ssl_credentials, **kwargs)

    extra = tuple(options)
    return make_transport


def ca_file_credentials(ca_file: str) -> grpc.ChannelCredentials | None:
    """TLS credentials trusting ``--google-ca-file`` instead of the system's CAs (None: the system's)."""
    if not ca_file:
        return None
    try:
        with open(ca_file, "rb") as pem:
            return grpc.ssl_channel_credentials(root_certificates=pem.read())
    except OSError as exc:
        raise StartError(f"--google-ca-file {ca_file}: {exc.strerror}") from None
