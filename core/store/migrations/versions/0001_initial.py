"""Chat rooms, their participants, chat messages and notifications.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types in core/store/schema.py as of this revision.
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ID = sa.String(128)
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "chat_rooms",
        sa.Column("id", ID, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", ID, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_chat_rooms"),
    )
    op.create_table(
        "chat_room_participants",
        sa.Column("room_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("added_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["chat_rooms.id"],
            name="fk_chat_room_participants_room_id_chat_rooms",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("room_id", "user_id", name="pk_chat_room_participants"),
    )
    op.create_table(
        "chat_messages",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("chat_room", ID, nullable=False),
        sa.Column("sender", ID, nullable=False),
        sa.Column("timestamp", TIME, nullable=False),
        sa.Column("message_type", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("video_call_data", sa.JSON(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("created_by", ID, nullable=False),
        sa.Column("updated_by", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_room"],
            ["chat_rooms.id"],
            name="fk_chat_messages_chat_room_chat_rooms",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_chat_messages"),
        sa.UniqueConstraint("id", name="uq_chat_messages_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_chat_messages_chat_room_seq", "chat_messages", ["chat_room", "seq"])
    op.create_table(
        "notifications",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("type", ID, nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("related_entity_type", ID, nullable=True),
        sa.Column("related_entity", ID, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_notifications"),
        sa.UniqueConstraint("id", name="uq_notifications_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_notifications_user_id_seq", "notifications", ["user_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_notifications_user_id_seq", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index("ix_chat_messages_chat_room_seq", table_name="chat_messages")
    op.drop_table("chat_messages")
    op.drop_table("chat_room_participants")
    op.drop_table("chat_rooms")
