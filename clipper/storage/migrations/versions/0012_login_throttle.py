"""Failed logins per name-and-address, per address and per name (the lockout moves off users).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'login_throttle',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('locked_until', sa.DateTime(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    op.create_index('ix_login_throttle_updated_at', 'login_throttle', ['updated_at'])


def downgrade() -> None:
    op.drop_index('ix_login_throttle_updated_at', table_name='login_throttle')
    op.drop_table('login_throttle')
