"""Stage runs carry a lease (renewed while the work runs) and the worker that holds it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('stage_runs', sa.Column('lease_until', sa.DateTime(), nullable=True))
    op.add_column('stage_runs', sa.Column('worker', sa.String(length=128), nullable=True))
    # The reconciler asks "is a run of this stage of this clip version alive?" every pass.
    op.create_index('ix_stage_runs_open', 'stage_runs', ['clip_id', 'clip_version', 'stage'])


def downgrade() -> None:
    op.drop_index('ix_stage_runs_open', table_name='stage_runs')
    with op.batch_alter_table('stage_runs') as batch:
        batch.drop_column('worker')
        batch.drop_column('lease_until')
