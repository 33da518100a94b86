"""The callers' audio (``--store-audio``): blocks of a session's audio, and a flag on the session.

Existing sessions keep every row; they get ``audio_stored`` false (none was kept).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the audio blocks table and the sessions' audio flag."""
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("audio_stored", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "audio_blocks",
        sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("start_ms", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    """Drop the audio and the flag."""
    op.drop_table("audio_blocks")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("audio_stored")
