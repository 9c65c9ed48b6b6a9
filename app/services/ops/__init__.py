"""Operations: setting up and upgrading, backup, restore, moving a deployment, retention, orphan files, purging
the trash.

Inside: transfer > restore > backup > crypto | target | blobs; purge > blobs; setup; retention
"""
from __future__ import annotations

from app.services.ops import backup, blobs, crypto, purge, restore, retention, setup, target, transfer

__all__ = ["backup", "blobs", "crypto", "purge", "restore", "retention", "setup", "target", "transfer"]
