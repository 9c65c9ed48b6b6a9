from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class ManagedKey(Base):
    """A server-generated RSA key pair for ODK form encryption ("managed encryption", as Central).

    Only the private key encrypted under a key derived from the coordinator's passphrase is stored
    (scrypt → AES-256-GCM, see app/services/encryption.py); the passphrase itself never is.
    form_id None: the key of the whole project (every form without an entity block)."""

    __tablename__ = "managed_key"
    __table_args__ = (UniqueConstraint("project_id", "form_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    form_id: Mapped[int | None] = mapped_column(ForeignKey("form.id", ondelete="CASCADE"), nullable=True)
    public_key: Mapped[str] = mapped_column(Text)  # base64 DER SubjectPublicKeyInfo (base64RsaPublicKey)
    private_key: Mapped[bytes] = mapped_column(LargeBinary)  # AES-256-GCM ciphertext of the PKCS#8 DER key
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    kdf: Mapped[str] = mapped_column(String(20))  # "scrypt"
    kdf_salt: Mapped[bytes] = mapped_column(LargeBinary)
    kdf_n: Mapped[int] = mapped_column(Integer)
    kdf_r: Mapped[int] = mapped_column(Integer)
    kdf_p: Mapped[int] = mapped_column(Integer)
    hint: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"),
                                                      nullable=True)
