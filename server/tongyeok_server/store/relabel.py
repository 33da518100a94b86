"""Records made before issue 24 under the old JWT caller ids, given to the caller ids of today.

The old id of a JWT caller was ``jwt:`` and its subject with odd characters
replaced by ``_``, cut to 64 characters; today's is one per issuer and
exact subject (``auth.jwt_identity``). A caller sees only records under its
own id, so after the upgrade its older records are out of its sight until
they are relabelled. Only an old id that stood for exactly one subject
(no ``_``, shorter than 64) is relabelled, as that subject of the issuer
given: the server accepts one issuer, the one the records were made under
unless the operator changed it since. An id that several subjects shared
(``jwt:o_brien`` was also o'brien's) is left as it is: whose records they
are cannot be told, and giving them to one of the subjects is the very
mix-up issue 24 fixed. They stay readable with ``transcripts:admin``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select, update

from tongyeok_server.auth.jwt_identity import CURRENT_FORM, caller_id, legacy_subject
from tongyeok_server.store import schema
from tongyeok_server.store.database import write

_S = schema.sessions


@dataclass
class Relabelled:
    """What ``relabel_jwt_callers`` did: records per old id, moved or left."""

    moved: dict[str, int] = field(default_factory=dict)
    left: dict[str, int] = field(default_factory=dict)


def relabel_jwt_callers(engine: Engine, issuer: str) -> Relabelled:
    """Give records of old JWT caller ids that named one subject to that subject of ``issuer``; idempotent."""
    done = Relabelled()
    with write(engine) as conn:
        owners = conn.execute(
            select(_S.c.caller_id, func.count()).where(_S.c.caller_id.startswith("jwt:")).group_by(_S.c.caller_id)
        ).all()
        for old, count in owners:
            if CURRENT_FORM.match(old):
                continue
            subject = legacy_subject(old)
            if subject is None:
                done.left[old] = count
                continue
            conn.execute(update(_S).where(_S.c.caller_id == old).values(caller_id=caller_id(issuer, subject)))
            done.moved[old] = count
    return done
