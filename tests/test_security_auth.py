"""Bearer tokens: API keys from a file that can change under the server, and JWTs checked against a JWKS."""

from __future__ import annotations

import base64
import itertools
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import running_server, stub_for
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.metrics import free_port, scrape
from tests.support.speech import Speech
from tests.support.tokens import AUDIENCE, ISSUER, Signer, write_jwks
from tests.support.waiting import wait_until
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.auth.api_keys import hash_key, new_key

ROOT = Path(__file__).resolve().parents[1]


def keys_file(path: Path, *entries: tuple[str, str, str]) -> Path:
    """Write a keys file of (id, key, scopes)."""
    lines = ["# id hash scopes", *(f"{i} {hash_key(k)} {scopes}" for i, k, scopes in entries)]
    path.write_text("\n".join(lines) + "\n")
    return path


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def list_languages(stub: Any, metadata: Any = None) -> Any:
    return stub.ListLanguages(pb.ListLanguagesRequest(), timeout=10, metadata=metadata)


def refusal(stub, metadata) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        list_languages(stub, metadata)
    return info.value


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    return {"full": new_key(), "translate_only": new_key()}


@pytest.fixture
def keyed_server(server_factory, tmp_path, keys):
    path = keys_file(
        tmp_path / "keys.txt",
        ("crm", keys["full"], "interpret,translate"),
        ("glossary-tool", keys["translate_only"], "translate"),
    )
    server = server_factory(api_keys=str(path))
    server.keys_path = path
    return server


def test_a_call_without_a_valid_key_is_unauthenticated_and_says_what_to_send(keyed_server, keys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    channel, stub = stub_for(keyed_server)
    with channel:
        cases = {
            "missing": None,
            "basic": [("authorization", "Basic dXNlcjpwYXNz")],
            "empty bearer": [("authorization", "Bearer ")],
            "unknown": bearer("tyk_" + "x" * 43),
            "revoked-looking": bearer(keys["full"] + "0"),
        }
        messages = {}
        for name, metadata in cases.items():
            error = refusal(stub, metadata)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, name
            messages[name] = str(error.details())
        assert "authorization: Bearer" in messages["missing"]
        assert "must be `Bearer <token>`" in messages["basic"]
        assert "not known to this server" in messages["unknown"]
        assert list_languages(stub, bearer(keys["full"])).recognizer.name == "pocketsphinx"
    for key in keys.values():
        assert key not in caplog.text
        assert all(key[4:20] not in m for m in messages.values())


def test_scopes_decide_which_methods_a_key_may_call(keyed_server, keys) -> None:
    channel, stub = stub_for(keyed_server)
    with channel:
        with pytest.raises(grpc.RpcError) as denied:
            events_of(stub.Interpret(iter([config()]), timeout=30, metadata=bearer(keys["translate_only"])))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "does not allow `interpret`" in str(denied.value.details())
        assert "key:glossary-tool" in str(denied.value.details())
        responses = list(
            stub.TranslateText(
                pb.TranslateTextRequest(text="Good morning.", source_language_code="en", target_language_codes=["es"]),
                timeout=30,
                metadata=bearer(keys["translate_only"]),
            )
        )
        assert responses[-1].translation_complete.text
        # ListLanguages needs a valid token, whatever its scopes.
        assert list_languages(stub, bearer(keys["translate_only"])).translator.name == "apertium"


def test_health_answers_without_a_token_and_reflection_needs_one(keyed_server, keys) -> None:
    channel, _ = stub_for(keyed_server)
    with channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert (
            health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
        )
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as anonymous:
            list(reflection.ServerReflectionInfo(iter([request]), timeout=10))
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        (answer,) = reflection.ServerReflectionInfo(iter([request]), timeout=10, metadata=bearer(keys["full"]))
        services = {s.name for s in answer.list_services_response.service}
        assert "tongyeok.v1.Interpreter" in services


def test_the_session_log_names_the_caller_by_key_id_never_by_key(keyed_server, keys, caplog) -> None:
    caplog.set_level(logging.INFO, "tongyeok_server")
    channel, stub = stub_for(keyed_server)
    with channel:
        events_of(stub.Interpret(iter([config()]), timeout=30, metadata=bearer(keys["full"])))
    lines = [r.getMessage() for r in caplog.records if "session" in r.getMessage()]
    assert any("start: caller=key:crm" in line for line in lines), lines
    assert any(" end: " in line and "caller=key:crm" in line for line in lines), lines
    assert keys["full"] not in caplog.text


def test_a_revoked_key_stops_new_calls_and_its_open_stream_ends_after_its_sentence(
    keyed_server, keys, speech: Speech
) -> None:
    # Issue 24: a revoked key's open stream went on for as long as the stream did (up to 4 h). Now the
    # stream watchdog finds the revocation within about two seconds, the sentence heard is finished, and
    # the stream ends UNAUTHENTICATED; another key's stream goes on.
    channel, stub = stub_for(keyed_server)
    revoked = threading.Event()
    pcm = speech.pcm()

    def requests(first: pb.InterpretRequest) -> Iterator[pb.InterpretRequest]:
        yield first
        yield from audio_requests(pcm[: len(pcm) // 2 // 3200 * 3200], 3200)
        revoked.wait(20)
        yield from audio_requests(pcm[len(pcm) // 2 // 3200 * 3200 :] * 3, 3200, pace_s=0.1)

    other = new_key()
    keys_file(
        keyed_server.keys_path,
        ("crm", keys["full"], "interpret,translate"),
        ("glossary-tool", keys["translate_only"], "translate"),
        ("crm-2", other, "interpret"),
    )
    with channel:
        assert wait_until(lambda: _accepted(stub, other), 10)
        others_stop = threading.Event()

        def others_requests() -> Iterator[pb.InterpretRequest]:
            yield config()
            while not others_stop.wait(0.1):
                yield pb.InterpretRequest(audio=bytes(3200))

        others = stub.Interpret(others_requests(), timeout=60, metadata=bearer(other))
        assert next(others).WhichOneof("event") == "session_started"
        call = stub.Interpret(requests(config()), timeout=60, metadata=bearer(keys["full"]))
        responses = iter(call)
        assert next(responses).WhichOneof("event") == "session_started"
        events = []
        for response in responses:  # the first sentences are recognised before the key goes
            events.append((response.WhichOneof("event"), response))
            if response.WhichOneof("event") == "final_transcript":
                break
        keys_file(
            keyed_server.keys_path,
            ("glossary-tool", keys["translate_only"], "translate"),
            ("crm-2", other, "interpret"),
        )
        revoked_at = time.monotonic()
        revoked.set()
        with pytest.raises(grpc.RpcError) as ended:
            events += [(r.WhichOneof("event"), r) for r in responses]
        ended_after_s = time.monotonic() - revoked_at
        assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED, ended.value.details()
        assert "the API key of key:crm was revoked while this stream was open" in str(ended.value.details())
        assert ended_after_s < 15  # the rest of the audio would have taken 20 s more
        assert of_kind(events, "final_transcript")
        error = refusal(stub, bearer(keys["full"]))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        # The keys still in the file keep working, and so does the stream of the other key.
        assert list_languages(stub, bearer(keys["translate_only"]))
        others_stop.set()
        list(others)
        assert others.code() == grpc.StatusCode.OK


def _accepted(stub: Any, key: str) -> bool:
    try:
        return bool(list_languages(stub, bearer(key)))
    except grpc.RpcError:
        return False


def test_a_broken_keys_file_keeps_the_keys_in_force(keyed_server, keys, caplog) -> None:
    channel, stub = stub_for(keyed_server)
    with channel:
        keyed_server.keys_path.write_text(f"crm {keys['full']} interpret\n")  # the key itself, not its hash
        keyed_server.reload()
        assert list_languages(stub, bearer(keys["full"]))
        assert "line 1: the second field must be sha256:" in caplog.text
        assert keys["full"] not in caplog.text


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("{key} sha256:{hash} interpret", "line 2: the first field is a key, not a key id"),
        ("!{key} sha256:{hash} interpret", "line 2: the first field (the key's id) must be"),
        ("crm {key} interpret", "line 2: the second field must be sha256:<64 hex digits> (the file holds the key's"),
        ("crm sha256:{hash} interpret,{key}", "line 2: scope 2 of the third field is not a scope"),
        ("crm sha256:{hash} interpret streams=2 {key}", "line 2: field 5 is not a limit"),
        ("crm sha256:{hash} interpret streams={key}", "line 2: field 4 (streams=) is not a number"),
        ("ops sha256:{hash} translate", "line 2: the key id is the one of line 1"),
        ("crm2 sha256:{other} translate", "line 2: the hash is the one of line 1"),
    ],
    ids=[
        "key-as-id",
        "bad-id",
        "key-as-hash",
        "key-as-scope",
        "key-as-limit",
        "key-as-number",
        "id-twice",
        "hash-twice",
    ],
)
def test_a_bad_keys_file_line_is_named_by_number_and_what_is_wrong_never_by_what_it_holds(line, says) -> None:
    # Issue 24: the messages quoted the field as written, so a key pasted into the wrong column reached the log.
    from tongyeok_server.auth.api_keys import ApiKeyFileError, parse

    key, first = new_key(), new_key()
    text = f"ops sha256:{hash_key(first)[7:]} interpret\n" + line.format(
        key=key, hash=hash_key(key)[7:], other=hash_key(first)[7:]
    )
    with pytest.raises(ApiKeyFileError) as error:
        parse(text, "keys.txt")
    message = str(error.value)
    assert message.startswith("keys.txt ") and says in message, message
    secret = key[len("tyk_") :]
    assert not any(secret[i : i + 8] in message for i in range(len(secret) - 8)), message


# -- JWTs --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer("backend-2026")


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory, signer):
    directory = tmp_path_factory.mktemp("jwt")
    jwks = write_jwks(directory / "jwks.json", signer)
    (directory / "resume-secret").write_bytes(base64.b64encode(os.urandom(32)))
    with running_server(
        resume_secret=str(directory / "resume-secret"),
        jwt_jwks=str(jwks),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_leeway_s=30,
        offline_workers=1,
        metrics_port=free_port(),
    ) as server:
        yield server


def test_a_valid_jwt_is_accepted_and_names_its_subject(jwt_server, signer, caplog) -> None:
    caplog.set_level(logging.INFO, "tongyeok_server")
    channel, stub = stub_for(jwt_server)
    with channel:
        token = signer.token(subject="user-4711", scope="interpret")
        events = events_of(stub.Interpret(iter([config()]), timeout=30, metadata=bearer(token)))
        assert of_kind(events, "session_started")
        # 10 s past its expiry, within the 30 s leeway for clock skew.
        assert list_languages(stub, bearer(signer.token(exp_in=-10)))
    assert "caller=jwt:op5xndye:user-4711" in caplog.text  # op5xndye: the issuer's label
    assert token not in caplog.text


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda s, o: s.token(exp_in=-120), "the token expired at"),
        (lambda s, o: s.token(nbf_in=300), "is not valid before"),
        (lambda s, o: s.token(aud="someone-else"), f"this server accepts aud {AUDIENCE!r}"),
        (lambda s, o: s.token(iss="https://evil.test"), f"this server accepts iss {ISSUER!r}"),
        (lambda s, o: s.token(sub=None), "has no 'sub' claim"),
        (lambda s, o: s.token(exp=None), "has no 'exp' claim"),
        (lambda s, o: s.token(exp=4_102_444_800), "days, longer than this server accepts (24.0 h"),  # exp: 2100
        (lambda s, o: s.token(iat=None, exp_in=3 * 86400), "valid for 3 days, longer than this server accepts (24.0 h"),
        (lambda s, o: o.token(kid=s.kid), "signature does not verify"),  # another key, our kid
        (lambda s, o: o.token(), "a key this server does not know (kid 'intruder')"),
        (lambda s, o: _tampered(s.token()), "signature does not verify"),
        (
            lambda s, o: _unsigned(s),
            "algorithm 'none' is not its key's",
        ),
        (
            lambda s, o: _hmac_with_public_key(s),
            "algorithm 'HS256' is not its key's",
        ),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "other-audience",
        "other-issuer",
        "no-subject",
        "no-expiry",
        "exp-2100",
        "three-days-without-iat",
        "forged-signature",
        "unknown-key",
        "tampered",
        "alg-none",
        "hmac-confusion",
    ],
)
def test_a_bad_jwt_is_unauthenticated_with_the_reason(jwt_server, signer, make, needle) -> None:
    intruder = Signer("intruder")
    token = make(signer, intruder)
    channel, stub = stub_for(jwt_server)
    with channel:
        error = refusal(stub, bearer(token))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert needle in str(error.details())
    assert token not in str(error.details()) and token.split(".")[1] not in str(error.details())


def _end_detached(stub: Any, resume_token: str, credential: Any) -> None:
    """Resume a detached session and end it, so that it frees its recogniser now rather than at its window's end."""
    resume = pb.InterpretRequest(resume=pb.ResumeRequest(resume_token=resume_token, last_sequence_number=1))
    events_of(stub.Interpret(iter([resume, pb.InterpretRequest(end=pb.EndOfAudio())]), timeout=30, metadata=credential))


def _with_header(header: object, signer: Signer) -> str:
    """A token with ``header`` as its header (PyJWT would not make most of these), good claims, a junk signature."""
    import json

    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    body = signer.token().split(".")[1]
    return f"{part(header)}.{body}.{part('not a signature')}"


MALFORMED_HEADERS = {
    "kid-number": {"alg": "ES256", "kid": 5},
    "kid-list": {"alg": "ES256", "kid": ["backend-2026"]},
    "kid-null": {"alg": "ES256", "kid": None},
    "kid-object": {"alg": "ES256", "kid": {"a": 1}},
    "crit": {"alg": "ES256", "kid": "backend-2026", "crit": ["exp"]},
    "crit-b64": {"alg": "ES256", "kid": "backend-2026", "b64": False, "crit": ["b64"]},
    "alg-list": {"alg": ["ES256"], "kid": "backend-2026"},
    "alg-missing": {"kid": "backend-2026"},
    "not-an-object": ["ES256", "backend-2026"],
}


def test_a_malformed_jwt_header_is_unauthenticated_counted_and_throttled_without_a_traceback(
    jwt_server, signer, caplog
) -> None:
    # Issue 24, bug 2: a kid that was not a string or a crit header made PyJWT raise InvalidTokenError,
    # which the verifier did not catch: UNKNOWN with the library's text and a traceback per call, past
    # the refusal's count and throttle.
    caplog.set_level(logging.DEBUG)
    metrics_port = jwt_server.observability.metrics_port
    before = scrape(metrics_port).value("tongyeok_auth_refusals_total", reason="invalid_jwt", code="UNAUTHENTICATED")
    channel, stub = stub_for(jwt_server)
    messages = {}
    with channel:
        for _ in range(3):
            for name, header in MALFORMED_HEADERS.items():
                error = refusal(stub, bearer(_with_header(header, signer)))
                assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (name, error.details())
                messages[name] = str(error.details())
    for name, message in messages.items():
        assert message.startswith("the bearer JWT is refused: the token"), (name, message)
        syntax = name in ("not-an-object", "crit-b64")  # b64=false wants a detached payload: not a JWT's shape
        expected = "not a well-formed JWT" if syntax else "`kid` must be strings, and no `crit`"
        assert expected in message, (name, message)
    after = scrape(metrics_port).value("tongyeok_auth_refusals_total", reason="invalid_jwt", code="UNAUTHENTICATED")
    assert after - before == 3 * len(MALFORMED_HEADERS)
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert len([r for r in caplog.records if "refused calls" in r.getMessage()]) <= 1


def test_jwt_subjects_that_looked_alike_are_different_callers(jwt_server, signer, caplog) -> None:
    # Issue 24, bug 3: the caller id was the subject with odd characters replaced by "_" and cut to 64:
    # o_brien read and resumed o'brien's sessions, and two long subjects with one beginning shared records.
    from tongyeok_client.proto import transcripts_pb2 as tpb
    from tongyeok_client.proto import transcripts_pb2_grpc as tpb_grpc

    caplog.set_level(logging.INFO, "tongyeok_server")
    scope = "interpret transcripts"
    long = "employee-" + "0" * 60
    pairs = [("o'brien@corp.example", "o_brien@corp.example"), (long + "-alice", long + "-bob")]
    channel, stub = stub_for(jwt_server)
    transcripts = tpb_grpc.TranscriptsStub(channel)  # type: ignore[no-untyped-call]
    with channel:
        for owner, other in pairs:
            resumable = config(interim=False)
            resumable.config.resumption.enabled = True
            stop = threading.Event()

            def requests(first: pb.InterpretRequest = resumable, stop: threading.Event = stop):
                yield first
                stop.wait(20)

            call = stub.Interpret(requests(), timeout=30, metadata=bearer(signer.token(subject=owner, scope=scope)))
            started = next(call).session_started
            call.cancel()  # the owner's network breaks: the session waits for the owner's resume
            stop.set()
            owner_token = bearer(signer.token(subject=owner, scope=scope))
            other_token = bearer(signer.token(subject=other, scope=scope))

            def listed_for(metadata: Any) -> list[str]:
                sessions = transcripts.ListSessions(tpb.ListSessionsRequest(), timeout=10, metadata=metadata).sessions
                return [s.name.rsplit("/", 1)[-1] for s in sessions]

            def recorded(session_id: str = started.session_id, metadata: Any = owner_token) -> bool:
                return session_id in listed_for(metadata)

            assert wait_until(recorded, 10)
            resume = pb.InterpretRequest(resume=pb.ResumeRequest(resume_token=started.resume_token))
            with pytest.raises(grpc.RpcError) as denied:
                events_of(stub.Interpret(iter([resume]), timeout=10, metadata=other_token))
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED, denied.value.details()
            assert started.session_id not in listed_for(other_token)
            with pytest.raises(grpc.RpcError) as hidden:
                transcripts.GetSession(
                    tpb.GetSessionRequest(name=f"sessions/{started.session_id}"), timeout=10, metadata=other_token
                )
            assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
            _end_detached(stub, started.resume_token, owner_token)
    assert "caller=jwt:op5xndye:o%27brien@corp.example" in caplog.text  # the issuer's label, the exact subject


def test_a_resume_token_sealed_before_the_upgrade_resumes_only_for_the_one_subject_its_old_id_named(
    jwt_server, signer
) -> None:
    # Tokens sealed by a server before issue 24 name the caller by its old id. A meeting in flight during
    # the rolling upgrade goes on where that id named one subject; where several shared it, it does not.
    from tongyeok_server.session.resume_token import ResumeTokens, load_secret

    tokens = ResumeTokens(load_secret(str(jwt_server.settings.resume.resume_secret)))
    channel, stub = stub_for(jwt_server)
    outcomes = {}
    with channel:
        for subject in ("user-4711", "o_brien"):
            credential = bearer(signer.token(subject=subject, scope="interpret"))
            request = config(interim=False)
            request.config.resumption.enabled = True
            stop = threading.Event()

            def requests(first: pb.InterpretRequest = request, stop: threading.Event = stop):
                yield first
                stop.wait(20)

            call = stub.Interpret(requests(), timeout=30, metadata=credential)
            live = next(call).session_started.resume_token
            call.cancel()
            stop.set()
            old = tokens.seal({**tokens.open(live), "caller": f"jwt:{subject}"})  # as the old server sealed it
            try:
                _end_detached(stub, old, credential)
                outcomes[subject] = "resumed"
            except grpc.RpcError as error:
                outcomes[subject] = error.code().name
                _end_detached(stub, live, credential)
    assert outcomes == {"user-4711": "resumed", "o_brien": "PERMISSION_DENIED"}


def test_a_jwt_without_the_scope_is_permission_denied(jwt_server, signer) -> None:
    channel, stub = stub_for(jwt_server)
    with channel, pytest.raises(grpc.RpcError) as denied:
        events_of(stub.Interpret(iter([config()]), timeout=30, metadata=bearer(signer.token(scope="translate"))))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "jwt:op5xndye:user-1" in str(denied.value.details())


def test_keys_and_jwts_together_and_the_example_issuer(server_factory, tmp_path, keys) -> None:
    """The README's set-up: backends with API keys, apps with JWTs from tools/issue_token.py."""
    secrets = tmp_path / "secrets"
    subprocess.run(
        [sys.executable, str(ROOT / "tools/issue_token.py"), "keygen", "--out-dir", str(secrets)], check=True
    )
    token = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools/issue_token.py"),
            "issue",
            "--key",
            str(secrets / "signing-key.pem"),
            "--issuer",
            ISSUER,
            "--audience",
            AUDIENCE,
            "--subject",
            "user-9",
            "--scope",
            "interpret translate",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    server = server_factory(
        api_keys=str(keys_file(tmp_path / "keys.txt", ("crm", keys["full"], "interpret,translate"))),
        jwt_jwks=str(secrets / "jwks.json"),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )
    channel, stub = stub_for(server)
    with channel:
        for credential in (token, keys["full"]):
            events = events_of(stub.Interpret(iter([config()]), timeout=30, metadata=bearer(credential)))
            assert of_kind(events, "session_started")


def test_tongyeok_keys_makes_a_key_the_server_accepts(server_factory, tmp_path) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "tongyeok_server.auth.keys_tool", "new", "ops-1", "--scopes", "translate"],
        check=True,
        capture_output=True,
        text=True,
    )
    key, line = made.stdout.splitlines()
    assert key not in line and line.startswith("ops-1 sha256:")
    path = tmp_path / "keys.txt"
    path.write_text(line + "\n")
    server = server_factory(api_keys=str(path))
    channel, stub = stub_for(server)
    with channel:
        assert list_languages(stub, bearer(key))


def test_refusals_are_counted_not_logged_one_by_one(keyed_server, caplog) -> None:
    caplog.set_level(logging.INFO, "tongyeok_server")
    channel, stub = stub_for(keyed_server)
    with channel:
        for i in itertools.islice(itertools.count(), 50):
            refusal(stub, bearer(f"tyk_wrong{i}"))
    refusal_lines = [r for r in caplog.records if "refused calls" in r.getMessage()]
    assert len(refusal_lines) <= 1


def _tampered(token: str) -> str:
    """The token with its claims changed (sub -> root) and its signature kept."""
    import base64
    import json

    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["sub"] = "root"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


def _unsigned(signer: Signer) -> str:
    import base64
    import json

    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "root", "scope": "interpret", "exp": now + 600}
    return f"{part({'alg': 'none', 'kid': signer.kid})}.{part(claims)}."


def _hmac_with_public_key(signer: Signer) -> str:
    import base64
    import hashlib
    import hmac
    import json

    from cryptography.hazmat.primitives import serialization

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    public = signer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    head = part(json.dumps({"alg": "HS256", "kid": signer.kid}).encode())
    body = part(
        json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "root", "scope": "interpret", "exp": now + 600}).encode()
    )
    sig = part(hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


@pytest.mark.parametrize("edge", [b"\n", b" ", b"\t\x0b"])
def test_a_raw_random_secret_whose_bytes_look_like_whitespace_is_taken_as_it_is(tmp_path, edge: bytes) -> None:
    from tongyeok_server.session.resume_token import load_secret

    # `head -c 32 /dev/urandom` starts or ends with a whitespace byte about once in eight files.
    raw = edge + b"\x93" * (32 - 2 * len(edge)) + edge
    secret = tmp_path / "resume-secret"
    secret.write_bytes(raw)
    assert load_secret(str(secret)) == load_secret(str(secret))  # loads, and always to the same key
    text = tmp_path / "text-secret"
    text.write_bytes(b"\x93" * 32 + b"\n")  # a secret with a trailing newline is the secret without it
    same = tmp_path / "same-secret"
    same.write_bytes(b"\x93" * 32)
    assert load_secret(str(text)) == load_secret(str(same))
