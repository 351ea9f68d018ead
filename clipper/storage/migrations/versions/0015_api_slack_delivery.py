"""Personal API and calendar tokens, Slack links (and replay guard), deliveries to the drive.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'api_tokens',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_used_at', sa.DateTime(), nullable=True),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_table(
        'slack_links',
        sa.Column('slack_user', sa.String(length=64), nullable=False),
        sa.Column('slack_team', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('linked_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('slack_team', 'slack_user'),
    )
    op.create_table(
        'slack_link_codes',
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('code_hash'),
    )
    op.create_table(
        'slack_seen',
        sa.Column('signature', sa.String(length=128), nullable=False),
        sa.Column('seen_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('signature'),
    )
    op.create_index('ix_slack_seen_seen_at', 'slack_seen', ['seen_at'])
    op.create_table(
        'slack_replies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('flag_id', sa.Integer(), nullable=False),
        sa.Column('clip_id', sa.Integer(), nullable=False),
        sa.Column('response_url', sa.Text(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['flag_id'], ['flags.id']),
        sa.ForeignKeyConstraint(['clip_id'], ['clips.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_slack_replies_clip_id', 'slack_replies', ['clip_id'])
    op.create_table(
        'deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('clip_id', sa.Integer(), nullable=False),
        sa.Column('source_path', sa.Text(), nullable=False),
        sa.Column('remote_path', sa.Text(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
        sa.Column('delivered_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['clip_id'], ['clips.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_deliveries_clip_id', 'deliveries', ['clip_id'])


def downgrade() -> None:
    op.drop_index('ix_deliveries_clip_id', table_name='deliveries')
    op.drop_table('deliveries')
    op.drop_index('ix_slack_replies_clip_id', table_name='slack_replies')
    op.drop_table('slack_replies')
    op.drop_index('ix_slack_seen_seen_at', table_name='slack_seen')
    op.drop_table('slack_seen')
    op.drop_table('slack_link_codes')
    op.drop_table('slack_links')
    op.drop_table('api_tokens')
