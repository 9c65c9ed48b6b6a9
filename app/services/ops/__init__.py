"""Operations: setting up and upgrading, backup, restore, moving a deployment, retention, orphan files.

Inside: transfer > restore > backup > crypto | target | blobs; setup; retention
"""
from __future__ import annotations

from app.services.ops import backup, blobs, crypto, restore, retention, setup, target, transfer

__all__ = ["backup", "blobs", "crypto", "restore", "retention", "setup", "target", "transfer"]
