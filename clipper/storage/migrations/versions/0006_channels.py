"""Live channels: the channels recorded, their segment index, and clips' missing seconds.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'channels',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('retention_hours', sa.Float(), nullable=True),
        sa.Column('paused', sa.Boolean(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('clock', sa.String(length=20), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('last_segment_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    op.create_table(
        'channel_segments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel_id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('wall_start', sa.Float(), nullable=False),
        sa.Column('duration', sa.Float(), nullable=False),
        sa.Column('first_pts', sa.BigInteger(), nullable=True),
        sa.Column('discontinuity', sa.Boolean(), nullable=False),
        sa.Column('bytes', sa.BigInteger(), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('arrived_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('channel_id', 'path'),
    )
    op.create_index('ix_channel_segments_channel_wall', 'channel_segments',
                    ['channel_id', 'wall_start'])
    op.add_column('clips', sa.Column('gaps', sa.JSON(), nullable=True))


def downgrade() -> None:
    # Not batch mode: on SQLite that copies and drops `clips`, which its foreign keys refuse
    # while flags point at it. SQLite (3.35+) drops a plain column in place.
    op.execute('ALTER TABLE clips DROP COLUMN gaps')
    op.drop_index('ix_channel_segments_channel_wall', table_name='channel_segments')
    op.drop_table('channel_segments')
    op.drop_table('channels')
