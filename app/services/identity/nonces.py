"""Authentication state shared by every worker: Digest nonce counts."""
from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.db import Database
from app.models import DigestNonceUse, utcnow


def record_nonce_count(db: Database, nonce: str, nc: int, lifetime: int) -> bool:
    """Remember nc for nonce; False when a count this high was seen already (a replay)."""
    insert = sqlite_insert if db.is_sqlite else pg_insert
    expires: datetime = utcnow() + timedelta(seconds=lifetime)
    stmt = insert(DigestNonceUse).values(nonce=nonce, nc=nc, expires_at=expires)
    stmt = stmt.on_conflict_do_update(
        index_elements=[DigestNonceUse.nonce], set_={"nc": stmt.excluded.nc},
        where=DigestNonceUse.nc < stmt.excluded.nc,
    ).returning(DigestNonceUse.nc)
    with db.write() as session:
        accepted = session.execute(stmt).first() is not None
        if random.random() < 0.01:  # now and then, forget nonces that can no longer be used
            session.execute(delete(DigestNonceUse).where(DigestNonceUse.expires_at < utcnow()))
    return accepted
