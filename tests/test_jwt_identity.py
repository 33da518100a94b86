"""JWT caller ids: one per (issuer, exact subject), short and safe to print; which old ids named one subject."""

from __future__ import annotations

import random
import re

from tongyeok_server.auth.jwt_identity import caller_id, legacy_subject

ISSUER = "https://backend.test"
SAFE = re.compile(r"^jwt:[a-z2-7]{8}:[A-Za-z0-9._@+%~-]+$")

# Subjects that the old label (odd characters -> "_", cut to 64) made one caller, and more that
# an encoding could confuse: escapes written out, the cut marker, long shared beginnings, odd code points.
LOOKALIKES = [
    "o'brien@corp.example",
    "o_brien@corp.example",
    "o brien@corp.example",
    "o%27brien@corp.example",
    "a~b",
    "a%7Eb",
    "a%7eb",
    "x" * 64,
    "x" * 65,
    "x" * 64 + "y",
    "x" * 40 + "~" + "a" * 26,
    "x" * 300,
    "x" * 299 + "y",
    "é" * 30,
    "e\u0301" * 30,
    "\ud800",
    "\udc00",
    "한국어 사용자",
    "user:1",
    "user/1",
    "user\n1",
]


def test_different_subjects_or_issuers_never_share_an_id() -> None:
    rng = random.Random(24)
    subjects = [
        *LOOKALIKES,
        *("".join(rng.choice("ab_'~%7E:é") for _ in range(rng.randint(1, 90))) for _ in range(3000)),
    ]
    pairs = {(issuer, subject) for issuer in (ISSUER, ISSUER + "/", "https://other.test") for subject in subjects}
    ids = {caller_id(issuer, subject) for issuer, subject in pairs}
    assert len(ids) == len(pairs)
    for an_id in ids:
        assert SAFE.match(an_id), an_id
        assert len(an_id) <= 4 + 8 + 1 + 64 + 3, an_id  # a cut label is 40 + "~" + 26 at most


def test_ordinary_subjects_read_as_they_are_and_the_same_pair_is_always_the_same_id() -> None:
    label = caller_id(ISSUER, "user-4711").split(":", 2)[1]
    assert caller_id(ISSUER, "user-4711") == f"jwt:{label}:user-4711"
    assert caller_id(ISSUER, "alice@example.com") == f"jwt:{label}:alice@example.com"
    assert caller_id(ISSUER, "o'brien") == f"jwt:{label}:o%27brien"
    assert caller_id("https://other.test", "user-4711") != caller_id(ISSUER, "user-4711")


def test_only_old_ids_made_from_exactly_one_subject_are_recognised() -> None:
    assert legacy_subject("jwt:user-4711") == "user-4711"
    assert legacy_subject("jwt:alice@example.com") == "alice@example.com"
    assert legacy_subject("jwt:o_brien") is None  # o_brien, o'brien, o brien ... all made it
    assert legacy_subject("jwt:" + "x" * 64) is None  # maybe cut from a longer subject
    assert legacy_subject("jwt:" + "x" * 63) == "x" * 63
    assert legacy_subject(caller_id(ISSUER, "user-4711")) is None  # already of the current form
    assert legacy_subject("key:crm") is None and legacy_subject("anonymous") is None


def test_records_of_old_ids_that_named_one_subject_are_relabelled_the_others_left(capsys) -> None:
    from tests.support.records import meeting_ops, open_record, store_url
    from tongyeok_server.store import ops, queries
    from tongyeok_server.store.__main__ import main
    from tongyeok_server.store.database import write

    today = caller_id(ISSUER, "user-9")
    owners = {"s1": "jwt:user-4711", "s2": "jwt:user-4711", "s3": "jwt:o_brien", "s4": "key:crm", "s5": today}
    with store_url("sqlite", None) as url:
        with open_record(url) as record, write(record.engine) as conn:
            for session_id, owner in owners.items():
                ops.apply(conn, meeting_ops(session_id, caller=owner))
        argv = ["relabel-jwt-callers", "--store", url, "--jwt-issuer", ISSUER]
        assert main(argv) == 0
        assert main(argv) == 0  # again: nothing more to do
        with open_record(url) as record:
            owner_of = {s: queries.get_session(record.engine, s, None).caller_id for s in owners}  # type: ignore[union-attr]
    assert owner_of == {
        "s1": caller_id(ISSUER, "user-4711"),
        "s2": caller_id(ISSUER, "user-4711"),
        "s3": "jwt:o_brien",  # o_brien's or o'brien's: nobody can tell
        "s4": "key:crm",
        "s5": today,
    }
    first, second = capsys.readouterr().out.split("record.db: ")[1:]
    assert first.startswith("2 records of 1 JWT callers relabelled") and "1 records of 1 old JWT" in first
    assert second.startswith("0 records of 0 JWT callers relabelled")
