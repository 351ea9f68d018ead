"""Rota reminders sent (once each) and users' email addresses.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sent_reminders',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key'),
    )
    # A plain ADD COLUMN: no batch copy of `users`, which other tables' foreign keys point at.
    op.add_column('users', sa.Column('email', sa.String(length=320), nullable=True))


def downgrade() -> None:
    op.execute('ALTER TABLE users DROP COLUMN email')
    op.drop_table('sent_reminders')
