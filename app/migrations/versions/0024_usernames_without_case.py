"""User names are unique without regard to case: `Admin` cannot be made beside `admin` (app users, web users,
collectors alike), and web and API sign-in find an account whatever the case typed.

An installation that already holds two names differing only by case cannot be upgraded until one is
renamed or removed: the migration stops and names them (nothing is changed).

Revision ID: 0024
Revises: 0023
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    clashes = op.get_bind().execute(sa.text(
        "SELECT lower(username), count(*) FROM user_account GROUP BY lower(username) HAVING count(*) > 1")).all()
    if clashes:
        names = ", ".join(name for name, _n in clashes)
        raise RuntimeError(f"User names must differ by more than upper and lower case, but these are held by two or "
                           f"more accounts: {names}. Rename or remove all but one of each (as they are now), then "
                           "start CareFile again.")
    op.create_index('uq_user_account_username_lower', 'user_account', [sa.text('lower(username)')], unique=True)


def downgrade() -> None:
    op.drop_index('uq_user_account_username_lower', table_name='user_account')
