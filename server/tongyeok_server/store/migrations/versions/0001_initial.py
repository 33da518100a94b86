"""The first meeting record: sessions, their languages, utterances and translations.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def _session_fk() -> sa.Column[str]:
    return sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)


def upgrade() -> None:
    """Create the tables of the first release."""
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("caller_id", sa.String(200), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("ended_at", _TS),
        sa.Column("outcome", sa.String(40), nullable=False, server_default=""),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("source_languages", sa.String(200), nullable=False),
        sa.Column("target_languages", sa.String(200), nullable=False),
        sa.Column("recognizer", sa.String(200), nullable=False, server_default=""),
        sa.Column("translator", sa.String(200), nullable=False, server_default=""),
        sa.Column("audio_duration_ms", sa.BigInteger),
        sa.Column("incomplete_reason", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_sessions_caller_started", "sessions", ["caller_id", "started_at", "id"])
    op.create_index("ix_sessions_started", "sessions", ["started_at", "id"])
    op.create_table(
        "session_languages",
        _session_fk(),
        sa.Column("language_code", sa.String(35), primary_key=True),
        sa.Column("primary_language", sa.String(8), nullable=False),
    )
    op.create_index("ix_session_languages_primary", "session_languages", ["primary_language"])
    op.create_index("ix_session_languages_code", "session_languages", ["language_code"])
    op.create_table(
        "utterances",
        _session_fk(),
        sa.Column("utterance_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("language_code", sa.String(35), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=False),
        sa.Column("end_ms", sa.BigInteger, nullable=False),
        sa.Column("final_at", _TS, nullable=False),
        sa.Column("target_languages", sa.String(200), nullable=False),
    )
    op.create_table(
        "translations",
        _session_fk(),
        sa.Column("utterance_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("language_code", sa.String(35), primary_key=True),
        sa.Column("source_language", sa.String(35), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("failed", sa.Boolean, nullable=False),
        sa.Column("failure_message", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    """Drop them (every record with them)."""
    for table in ("store_meta", "translations", "utterances", "session_languages", "sessions"):
        op.drop_table(table)
