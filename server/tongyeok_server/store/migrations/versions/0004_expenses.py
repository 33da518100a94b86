"""Expenses read from receipts (the Expenses service) and the receipts' files.

Existing records are untouched: two new tables.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the expenses and receipt_images tables."""
    op.create_table(
        "expenses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("caller_id", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(64)),
        sa.Column("merchant", sa.Text, nullable=False, server_default=""),
        sa.Column("expense_date", sa.String(10)),
        sa.Column("total", sa.String(40)),
        sa.Column("currency", sa.String(3), nullable=False, server_default=""),
        sa.Column("tax", sa.String(40)),
        sa.Column("subtotal", sa.String(40)),
        sa.Column("payment", sa.String(20), nullable=False, server_default=""),
        sa.Column("category", sa.String(20), nullable=False, server_default=""),
        sa.Column("line_items", sa.Text, nullable=False, server_default="[]"),
        sa.Column("confidence", sa.Text, nullable=False, server_default="{}"),
        sa.Column("corrected", sa.Text, nullable=False, server_default=""),
        sa.Column("raw_text", sa.Text, nullable=False, server_default=""),
        sa.Column("engine", sa.String(200), nullable=False, server_default=""),
        sa.Column("engine_detail", sa.String(300), nullable=False, server_default=""),
        sa.Column("language", sa.String(35), nullable=False, server_default=""),
        sa.Column("trip", sa.String(200), nullable=False, server_default=""),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("image_media_type", sa.String(40), nullable=False, server_default=""),
        sa.Column("image_bytes", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_expenses_caller_date", "expenses", ["caller_id", "expense_date", "id"])
    op.create_index("ix_expenses_caller_trip", "expenses", ["caller_id", "trip"])
    op.create_index("ux_expenses_caller_request", "expenses", ["caller_id", "request_id"], unique=True)
    op.create_table(
        "receipt_images",
        sa.Column("expense_id", sa.String(64), sa.ForeignKey("expenses.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_receipt_images_created", "receipt_images", ["created_at"])


def downgrade() -> None:
    """Drop the expenses tables."""
    op.drop_table("receipt_images")
    op.drop_table("expenses")
