"""mail rules: per-notice reply and bounce tokens, the sender's authentication per message

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reply_token', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('bounce_token', sa.String(length=32), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_notices_reply_token'), ['reply_token'])
        batch_op.create_unique_constraint(batch_op.f('uq_notices_bounce_token'),
                                          ['bounce_token'])
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sender_authentication', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('sender_authentication')
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_notices_bounce_token'), type_='unique')
        batch_op.drop_constraint(batch_op.f('uq_notices_reply_token'), type_='unique')
        batch_op.drop_column('bounce_token')
        batch_op.drop_column('reply_token')
