"""Clip tags: every tag any flag of a clip carries, indexed for search's tag filter.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        'clip_tags',
        sa.Column('tag', sa.String(length=64), nullable=False),
        sa.Column('clip_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['clip_id'], ['clips.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('tag', 'clip_id'),
    )
    op.create_index('ix_clip_tags_clip_id', 'clip_tags', ['clip_id'])
    rows = set()
    for clip_id, tags in op.get_bind().execute(sa.text("SELECT clip_id, tags FROM flags")):
        values = json.loads(tags) if isinstance(tags, str) else tags
        for t in values if isinstance(values, list) else []:
            if str(t).strip():
                rows.add((str(t).strip().lower()[:64], clip_id))
    if rows:
        op.bulk_insert(table, [{"tag": t, "clip_id": c} for t, c in sorted(rows)])


def downgrade() -> None:
    op.drop_index('ix_clip_tags_clip_id', table_name='clip_tags')
    op.drop_table('clip_tags')
