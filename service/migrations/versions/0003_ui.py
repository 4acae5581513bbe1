"""analyst UI: login sessions, and the index behind "new confirmed incidents on top"

Revision ID: 0003
Revises: 0001

Sessions are server-side (``ui_sessions``): the browser holds a random token, the table
its SHA-256, so logging out or revoking the key ends the session at once and a copy of
the database does not hand out live sessions. The incidents index serves the first
section of the incidents page (confirmed, unreviewed, most recently seen first) from an
index range instead of a scan of every incident.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ui_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=24), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ui_sessions_key_id", "ui_sessions", ["key_id"], unique=False)
    op.create_index("ix_ui_sessions_expires_at", "ui_sessions", ["expires_at"], unique=False)
    op.create_index(
        "ix_incidents_verdict_review_last_seen",
        "incidents",
        ["verdict", "review_state", "last_seen"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_incidents_verdict_review_last_seen", table_name="incidents")
    op.drop_index("ix_ui_sessions_expires_at", table_name="ui_sessions")
    op.drop_index("ix_ui_sessions_key_id", table_name="ui_sessions")
    op.drop_table("ui_sessions")
