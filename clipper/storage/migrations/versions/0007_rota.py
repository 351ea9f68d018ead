"""The rota: shifts, sign-ups, and each user's time zone.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'shifts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel_id', sa.Integer(), nullable=False),
        sa.Column('start', sa.DateTime(), nullable=False),
        sa.Column('end', sa.DateTime(), nullable=False),
        sa.Column('needs', sa.Integer(), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('series_id', sa.String(length=32), nullable=True),
        sa.Column('cancelled', sa.Boolean(), nullable=False),
        sa.Column('created_by', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_shifts_start_end', 'shifts', ['start', 'end'])
    op.create_index('ix_shifts_channel_id', 'shifts', ['channel_id'])
    op.create_table(
        'signups',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('shift_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('checked_in_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['shift_id'], ['shifts.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('shift_id', 'user_id'),
    )
    op.create_index('ix_signups_user_id', 'signups', ['user_id'])
    # A plain ADD COLUMN: no batch copy of `users`, which other tables' foreign keys point at.
    op.add_column('users', sa.Column('timezone', sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.execute('ALTER TABLE users DROP COLUMN timezone')
    op.drop_index('ix_signups_user_id', table_name='signups')
    op.drop_table('signups')
    op.drop_index('ix_shifts_channel_id', table_name='shifts')
    op.drop_index('ix_shifts_start_end', table_name='shifts')
    op.drop_table('shifts')
