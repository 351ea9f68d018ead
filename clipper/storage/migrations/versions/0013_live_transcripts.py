"""Live transcripts of recorded channels, watch-lists and their alerts.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs: no batch copy of `channels`, which segments point at.
    op.add_column('channels', sa.Column('transcribe', sa.String(length=16), nullable=True))
    op.add_column('channels', sa.Column('transcript_source', sa.String(length=16),
                                        nullable=True))
    op.create_table(
        'live_segments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel_id', sa.Integer(), nullable=False),
        sa.Column('wall_start', sa.Float(), nullable=False),
        sa.Column('wall_end', sa.Float(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('words', sa.JSON(), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_live_segments_channel_wall', 'live_segments',
                    ['channel_id', 'wall_start'])
    op.create_table(
        'live_asr_state',
        sa.Column('channel_id', sa.Integer(), nullable=False),
        sa.Column('done_until', sa.Float(), nullable=True),
        sa.Column('lag_seconds', sa.Float(), nullable=True),
        sa.Column('load', sa.Float(), nullable=True),
        sa.Column('source', sa.String(length=16), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('channel_id'),
    )
    op.create_table(
        'watches',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('query', sa.Text(), nullable=False),
        sa.Column('channels', sa.JSON(), nullable=True),
        sa.Column('auto_flag', sa.Boolean(), nullable=False),
        sa.Column('notify_url', sa.Text(), nullable=True),
        sa.Column('created_by', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    op.create_table(
        'alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('watch', sa.String(length=64), nullable=False),
        sa.Column('channel', sa.String(length=40), nullable=False),
        sa.Column('wall_start', sa.Float(), nullable=False),
        sa.Column('wall_end', sa.Float(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('flag_id', sa.Integer(), nullable=True),
        sa.Column('clip_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['flag_id'], ['flags.id']),
        sa.ForeignKeyConstraint(['clip_id'], ['clips.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_alerts_created_at', 'alerts', ['created_at'])
    op.create_index('ix_alerts_watch_channel_wall', 'alerts', ['watch', 'channel', 'wall_start'])


def downgrade() -> None:
    op.drop_index('ix_alerts_watch_channel_wall', table_name='alerts')
    op.drop_index('ix_alerts_created_at', table_name='alerts')
    op.drop_table('alerts')
    op.drop_table('watches')
    op.drop_table('live_asr_state')
    op.drop_index('ix_live_segments_channel_wall', table_name='live_segments')
    op.drop_table('live_segments')
    op.execute('ALTER TABLE channels DROP COLUMN transcript_source')
    op.execute('ALTER TABLE channels DROP COLUMN transcribe')
