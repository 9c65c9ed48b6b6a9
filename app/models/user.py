from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, UTCDateTime, utcnow

ROLES = ("admin", "coordinator", "manager", "collector")


class User(Base):
    __tablename__ = "user_account"
    # User names are unique without regard to case (`Admin` cannot be made beside `admin`) and web/API
    # sign-in finds them so (services/identity/users.py same_name); the name keeps the case it was given.
    __table_args__ = (Index("uq_user_account_username_lower", func.lower("username"), unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(300))
    # MD5(username:realm:password), needed to verify HTTP Digest (ODK Collect with a
    # username and password). It is password-equivalent for this realm only.
    digest_ha1: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # A manager sees identifying (sensitive) details only when an admin grants it; admins and
    # coordinators always do (app.services.access.sees_sensitive).
    sees_sensitive: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    language: Mapped[str] = mapped_column(String(10), default="zh", server_default="zh")  # web UI language: zh | en
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    regions: Mapped[list[UserRegion]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )
    # Loaded together with the user when a phone signs in (services.users.phone_user_options).
    assignments: Mapped[list[FormAssignment]] = relationship(lazy="select", viewonly=True)

    @property
    def region_codes(self) -> list[str]:
        return sorted(r.code for r in self.regions)


class UserRegion(Base):
    """A national administrative division code; a code covers every code that starts with it."""

    __tablename__ = "user_region"
    __table_args__ = (UniqueConstraint("user_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(12), index=True)

    user: Mapped[User] = relationship(back_populates="regions")


class CollectorToken(Base):
    """A revocable secret in the Collect server URL (/v1/key/<token>/projects/<id>). Stored as its SHA-256,
    and sealed under the server's secret key so the QR code can be shown again (identity/tokens.py)."""

    __tablename__ = "collector_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column("token", String(64), unique=True)
    sealed: Mapped[str | None] = mapped_column(String(200), nullable=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class FormAssignment(Base):
    """Explicit form assignment: a collector with any assignment sees only assigned forms."""

    __tablename__ = "form_assignment"
    __table_args__ = (UniqueConstraint("user_id", "form_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    form_id: Mapped[int] = mapped_column(ForeignKey("form.id", ondelete="CASCADE"), index=True)


class DigestNonceUse(Base):
    """Highest nonce count seen per Digest nonce, shared by every worker (replay protection)."""

    __tablename__ = "digest_nonce_use"

    nonce: Mapped[str] = mapped_column(String(120), primary_key=True)
    nc: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class WebSession(Base):
    """A signed-in browser. The session cookie names the row; signing out or a change to the user's
    password, role or active state deletes it, so a copied cookie stops working (services.sessions)."""

    __tablename__ = "web_session"

    # The SHA-256 of the session id the cookie carries (identity/tokens.py): a copied database signs nobody in.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ApiSession(Base):
    """A bearer token from POST /v1/sessions (as ODK Central; pyodk signs in this way)."""

    __tablename__ = "api_session"

    # The SHA-256 of the bearer token (identity/tokens.py): the token itself is only ever in the answer.
    token_hash: Mapped[str] = mapped_column("token", String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
