"""The speech output's metadata: for each spoken translation its voice, encoding, size, length and delay.

Existing records keep every row; their translations simply have no speech row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the speech table."""
    op.create_table(
        "speech",
        sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("utterance_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("language_code", sa.String(35), primary_key=True),
        sa.Column("voice", sa.String(200), nullable=False),
        sa.Column("encoding", sa.String(20), nullable=False),
        sa.Column("sample_rate_hz", sa.Integer, nullable=False),
        sa.Column("audio_bytes", sa.BigInteger, nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("duration_ms", sa.BigInteger),
        sa.Column("first_audio_after_final_ms", sa.BigInteger),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop the speech table."""
    op.drop_table("speech")
