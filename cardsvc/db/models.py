"""Database tables (SQLAlchemy 2.0 typed models). API schemas live in ``cardsvc.api.schemas``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cardsvc.db.base import Base, BigId, PathString, UTCDateTime, utcnow
from verification.entry import EntryRules

MEMBER_STATUSES = ("active", "suspended", "left", "deceased")
OFFICER_ROLES = ("admin", "officer", "viewer")
CONSENT_PURPOSES = ("identity_verification", "registry_publication", "digital_card_messaging")
CONSENT_METHODS = ("paper_form", "app")


class ChapterLevel(Base):
    """A level of the chapter tree (central, province, commune, branch, group, special): data, not code."""

    __tablename__ = "chapter_levels"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_vi: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))


class Chapter(Base):
    """A node of the chapter tree.

    ``path`` is a materialised path of ids, ``/1/7/42/``: a subtree is every chapter whose path starts with the
    root's path, which one B-tree range scan answers. Merged chapters stay as rows (``status='merged'``,
    ``merged_into_id``) so that their code, history and audit entries remain findable.
    """

    __tablename__ = "chapters"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'merged')", name="status"),
        Index("ix_chapters_path", "path"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(ForeignKey("chapter_levels.code"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("chapters.id"), index=True)
    path: Mapped[str] = mapped_column(PathString)
    depth: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="active")
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("chapters.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ChapterCodeAlias(Base):
    """A former code of a chapter (after a code change), so that old paper forms and files still resolve."""

    __tablename__ = "chapter_code_aliases"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    chapter_id: Mapped[int] = mapped_column(ForeignKey("chapters.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Member(Base):
    """A union member. ID and phone numbers are stored encrypted with a keyed blind index for exact look-up.

    A record merged into another member's stays, closed, with ``merged_into_id`` set (like a merged chapter).
    """

    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'suspended', 'left', 'deceased')", name="status"),
        CheckConstraint("gender IN ('female', 'male')", name="gender"),
        CheckConstraint("birth_date_precision IN ('day', 'year')", name="birth_date_precision"),
        Index("ix_members_chapter_sort", "chapter_id", "sort_key"),
        Index("ix_members_merged_into_id", "merged_into_id", sqlite_where=text("merged_into_id IS NOT NULL"),
              postgresql_where=text("merged_into_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_number: Mapped[str] = mapped_column(String(10), unique=True)
    full_name: Mapped[str] = mapped_column(String(100))
    name_search: Mapped[str] = mapped_column(String(110), index=True)
    sort_key: Mapped[str] = mapped_column(String(220))
    birth_date: Mapped[date] = mapped_column(Date)
    birth_date_precision: Mapped[str] = mapped_column(String(4), default="day")
    gender: Mapped[str] = mapped_column(String(6))
    id_number_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_number_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    id_number_masked: Mapped[str | None] = mapped_column(String(12))
    old_id_number_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    old_id_number_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    old_id_number_masked: Mapped[str | None] = mapped_column(String(9))
    # Phone numbers are personal data too: encrypted like ID numbers, with a blind index (not unique: a family may
    # share one number) and the mask officers see.
    phone_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_index: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str | None] = mapped_column(String(12))
    chapter_id: Mapped[int] = mapped_column(ForeignKey("chapters.id"))
    join_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default="active")
    status_reason: Mapped[str | None] = mapped_column(String(200))
    status_changed_on: Mapped[date | None] = mapped_column(Date)
    honorary: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Set when this record was merged into another member's (a duplicate): see cardsvc.services.merges.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))

    chapter: Mapped[Chapter] = relationship(lazy="joined", innerjoin=True)


class MemberStatusChange(Base):
    """History of a member's status: who changed it, from what, to what, why and from which date."""

    __tablename__ = "member_status_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(10))
    to_status: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(String(200))
    effective_on: Mapped[date] = mapped_column(Date)
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Consent(Base):
    """A member's consent to one purpose (Law 91/2025): how it was given, who recorded it, and its withdrawal."""

    __tablename__ = "consents"
    __table_args__ = (
        CheckConstraint(
            "purpose IN ('identity_verification', 'registry_publication', 'digital_card_messaging')",
            name="purpose",
        ),
        CheckConstraint("method IN ('paper_form', 'app')", name="method"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(40))
    method: Mapped[str] = mapped_column(String(16))
    evidence_ref: Mapped[str | None] = mapped_column(String(200))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_by_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    withdrawal_note: Mapped[str | None] = mapped_column(String(200))


class Officer(Base):
    """An officer account. ``chapter_id`` is the root of the officer's scope (NULL: the whole tree, admins only)."""

    __tablename__ = "officers"
    __table_args__ = (CheckConstraint("role IN ('admin', 'officer', 'viewer')", name="role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10))
    chapter_id: Mapped[int | None] = mapped_column(ForeignKey("chapters.id"))
    permissions: Mapped[str] = mapped_column(String(200), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Wrong passwords from addresses she has not signed in from recently, and the pause they put on such addresses
    # (per-address counts are in ``login_addresses``).
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Carried in every access token; bumped by a password change, a disable and "sign out everywhere", which so
    # ends every token issued before.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    chapter: Mapped[Chapter | None] = relationship(lazy="joined")

    @property
    def permission_set(self) -> frozenset[str]:
        return frozenset(p for p in self.permissions.split(",") if p)


class LoginAddress(Base):
    """Password logins of one officer from one client address (an IPv6 client counts by its /64).

    ``failures`` wrong passwords in a row pause logins of this pair from ``locked_until``; ``last_success_at`` makes
    the address a known one, which a pause of the whole account for unknown addresses does not reach.
    """

    __tablename__ = "login_addresses"
    __table_args__ = (UniqueConstraint("officer_id", "address", name="uq_login_addresses_officer_address"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    address: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AdminSession(Base):
    """A signed-in browser of the officer pages; the cookie names the row, so logout (``ended_at``) is final."""

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    officer: Mapped[Officer] = relationship(lazy="joined")


class AuditEntry(Base):
    """Append-only audit trail of every write and every read of unmasked personal data.

    The migration installs triggers that refuse UPDATE and DELETE on this table. ``chapter_path`` is the path of
    the chapter concerned at the time of the event, which is what scopes an officer's audit queries.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    chapter_path: Mapped[str | None] = mapped_column(PathString, index=True)
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# The counter that triggers bump whenever what a check-in decides with changes (migration 0007).
CONFIG_COUNTER = "checkin_config"


class Counter(Base):
    """Named counters: the member-number sequence (allocated in blocks) and the check-in configuration generation."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigId, default=0)



CARD_STATUSES = ("active", "suspended", "revoked", "superseded")
REVOCATION_REASONS = ("lost", "stolen", "left", "deceased", "key_compromised", "damaged", "other")


class SigningKey(Base):
    """A signing key. ``purpose`` 'card' signs credentials; 'trust' signs trust bundles and status lists.

    The private key is PKCS#8, encrypted under the key-encryption key (which never enters the database). A key id
    is bound to exactly one key and one algorithm. Status: ``active`` (signs; one per purpose), ``retired`` (still
    verifies until its cards expire), ``compromised`` (every card it signed fails verification).
    """

    __tablename__ = "signing_keys"
    __table_args__ = (
        CheckConstraint("purpose IN ('card', 'trust')", name="purpose"),
        CheckConstraint("algorithm IN ('EdDSA', 'ES256')", name="algorithm"),
        CheckConstraint("status IN ('active', 'retired', 'compromised')", name="status"),
        Index("uq_signing_keys_active_purpose", "purpose", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kid: Mapped[str] = mapped_column(String(4), unique=True)
    purpose: Mapped[str] = mapped_column(String(8))
    algorithm: Mapped[str] = mapped_column(String(8))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(12), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StatusList(Base):
    """A revocation/suspension status list (IETF Token Status List, 2 bits per card).

    Cards get random, never reused indexes; ``version`` increases with every change and makes the ETag.
    """

    __tablename__ = "status_lists"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    allocated: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Card(Base):
    """An issued card: the exact signed credential bytes plus its lifecycle state."""

    __tablename__ = "cards"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'suspended', 'revoked', 'superseded')", name="status"),
        UniqueConstraint("status_list_id", "status_index", name="uq_cards_status_slot"),
        # One current card per member, enforced by the database even under concurrent issuance.
        Index("uq_cards_current_member", "member_id", unique=True,
              sqlite_where=text("status IN ('active', 'suspended')"),
              postgresql_where=text("status IN ('active', 'suspended')")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    card_id: Mapped[str] = mapped_column(String(16), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    signing_key_id: Mapped[int] = mapped_column(ForeignKey("signing_keys.id"), index=True)
    issued_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default="active")
    status_reason: Mapped[str | None] = mapped_column(String(32))
    status_note: Mapped[str | None] = mapped_column(String(200))
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_list_id: Mapped[int] = mapped_column(ForeignKey("status_lists.id"))
    status_index: Mapped[int] = mapped_column(Integer)
    credential: Mapped[bytes] = mapped_column(LargeBinary)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[Member] = relationship(lazy="joined", innerjoin=True)
    signing_key: Mapped[SigningKey] = relationship(lazy="joined", innerjoin=True)


BINDING_STATUSES = ("active", "suspended", "revoked", "superseded")
BINDING_ENDINGS = ("member", "officer", "other_phone", "card")


class CardBinding(Base):
    """A card bound to one phone's key: the phone shows live codes (docs/card-format.md §8).

    The binding has its own random, never reused status slot, which the bound credential names; its status follows
    the card (suspended, revoked and superseded with it) and ends on its own when the member or an officer
    de-activates it or another phone is activated (``ended_by``). No phone identifier and no key is stored: the bound
    credential, with the phone's public key, is handed to the phone and kept only there.
    """

    __tablename__ = "card_bindings"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'suspended', 'revoked', 'superseded')", name="status"),
        CheckConstraint("ended_by IN ('member', 'officer', 'other_phone', 'card')", name="ended_by"),
        UniqueConstraint("status_list_id", "status_index", name="uq_card_bindings_status_slot"),
        # One phone per card, enforced by the database.
        Index("uq_card_bindings_current_card", "card_id", unique=True,
              sqlite_where=text("status IN ('active', 'suspended')"),
              postgresql_where=text("status IN ('active', 'suspended')")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default="active")
    status_list_id: Mapped[int] = mapped_column(ForeignKey("status_lists.id"))
    status_index: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(12))

    card: Mapped[Card] = relationship(lazy="joined", innerjoin=True)


class BindingCode(Base):
    """A one-time code an officer gives a member to activate her live card on a phone (the second factor: the
    ``/m/`` link alone is a bearer secret). Stored as a hash; a few wrong tries or its expiry burn it."""

    __tablename__ = "binding_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class Job(Base):
    """A long-running job (batch issuance, registry publication) with progress; re-running it is safe (it skips
    finished work).

    It ends ``done`` (``failed`` counts the members who got no card, ``job_failures`` says why) or ``failed`` (stopped
    by an error that is not about one member, in ``error``).
    """

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(10), default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    # What a finished (or stopped) job reports beyond its counts, e.g. a registry publication's summary.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    chapter_path: Mapped[str | None] = mapped_column(PathString)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class JobFailure(Base):
    """A member a batch job could not issue a card to, with the reason; the job went on with the others."""

    __tablename__ = "job_failures"
    __table_args__ = (UniqueConstraint("job_id", "member_id", name="uq_job_failures_job_member"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    code: Mapped[str] = mapped_column(String(40))
    message_en: Mapped[str] = mapped_column(String(300))
    message_vi: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[Member] = relationship(lazy="joined", innerjoin=True)


CHUNK_STATUSES = ("pending", "running", "done")


class JobChunk(Base):
    """A range of member ids of a batch job, issued in one transaction by whichever worker claims it.

    A worker claims a ``pending`` chunk (or a ``running`` one whose lease expired: its worker died) by setting
    ``worker`` and ``lease_expires_at``; the chunk's cards, audit entry and ``done`` status commit together, so a
    chunk is either wholly issued or not at all (docs/scale.md §5).
    """

    __tablename__ = "job_chunks"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'running', 'done')", name="status"),
        UniqueConstraint("job_id", "first_member_id", name="uq_job_chunks_job_first"),
        Index("ix_job_chunks_job_status", "job_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    first_member_id: Mapped[int] = mapped_column(BigId)
    last_member_id: Mapped[int] = mapped_column(BigId)
    planned: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    worker: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    issued: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)


class Event(Base):
    """An event of a chapter with its check-in window and rules.

    ``eligibility``: ``subtree`` (members of the chapter and its sub-chapters), ``invite`` (an invite list) or
    ``all`` (every active member of the event's scope). ``mode``: ``entry`` or ``entry_exit``; ``allow_reentry``
    allows several entries.

    ``scope_chapter_id``: the subtree no eligible member lies outside, recorded at creation: the event's chapter for
    ``subtree`` and ``invite``, the creating officer's scope root for ``all`` (None, the whole tree, only when the
    creator's scope is the whole tree).

    ``live_policy``: which cards pass (docs/card-format.md §8.6): ``any`` card, ``live_preferred`` (a printed card
    passes with a prompt to check an identity document) or ``live_required`` (only a live code on a bound phone).
    """

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("eligibility IN ('subtree', 'invite', 'all')", name="eligibility"),
        CheckConstraint("mode IN ('entry', 'entry_exit')", name="mode"),
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        CheckConstraint("live_policy IN ('any', 'live_preferred', 'live_required')", name="live_policy"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chapter_id: Mapped[int] = mapped_column(ForeignKey("chapters.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    venue: Mapped[str] = mapped_column(String(200), default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checkin_opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checkin_closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    eligibility: Mapped[str] = mapped_column(String(10), default="subtree")
    mode: Mapped[str] = mapped_column(String(10), default="entry")
    allow_reentry: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(10), default="open")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    scope_chapter_id: Mapped[int | None] = mapped_column(ForeignKey("chapters.id"))
    live_policy: Mapped[str] = mapped_column(String(16), default="any", server_default="any")

    chapter: Mapped[Chapter] = relationship(lazy="joined", innerjoin=True, foreign_keys=[chapter_id])
    scope_chapter: Mapped[Chapter | None] = relationship(lazy="joined", foreign_keys=[scope_chapter_id])

    @property
    def rules(self) -> EntryRules:
        """The event's check-in rules, as check-ins decide with them, the offline bundle carries them and the API
        shows them."""
        return EntryRules(self.checkin_opens_at, self.checkin_closes_at, self.eligibility, self.mode,
                          self.allow_reentry, self.status, self.live_policy)


class EventInvite(Base):
    __tablename__ = "event_invites"

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)


class Station(Base):
    """A check-in device registered for one event. Tokens are stored as SHA-256 hashes only."""

    __tablename__ = "stations"
    __table_args__ = (CheckConstraint("status IN ('pending', 'active', 'revoked')", name="status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    provisioning_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    provisioning_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Checkin(Base):
    """Every scan of an event: accepted entries/exits and denied scans (with reason and payload hash, never the
    payload). The database guarantees one accepted row per member, event and sequence number, and one row per
    client nonce, so concurrent and repeated submissions cannot create duplicates."""

    __tablename__ = "checkins"
    __table_args__ = (
        CheckConstraint("result IN ('ok', 'error')", name="result"),
        CheckConstraint("direction IN ('in', 'out')", name="direction"),
        UniqueConstraint("event_id", "client_nonce", name="uq_checkins_nonce"),
        Index("uq_checkins_member_seq", "event_id", "member_id", "seq", unique=True,
              sqlite_where=text("result = 'ok'"), postgresql_where=text("result = 'ok'")),
        Index("ix_checkins_event_result", "event_id", "result"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    card_id: Mapped[str | None] = mapped_column(String(16))
    result: Mapped[str] = mapped_column(String(5))
    reason: Mapped[str | None] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(3), default="in")
    seq: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(12))
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    client_nonce: Mapped[str] = mapped_column(String(64))
    payload_hash: Mapped[str] = mapped_column(String(64))
    scanned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    manual_reason: Mapped[str | None] = mapped_column(String(200))
    # A scan a station decided without the server (``offline``), with the station's own verdict: an offline
    # acceptance the server refuses is a conflict (see ``cardsvc.services.checkins.conflict_of``).
    offline: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    local_result: Mapped[str | None] = mapped_column(String(5))
    local_reason: Mapped[str | None] = mapped_column(String(32))


NFC_WRITE_STATUSES = ("pending", "done", "failed")


class NfcWriteRequest(Base):
    """An officer's request that a station write a card to a blank NFC tag; the station polls for it and reports.

    ``card_id`` is the card's public id; the credential itself is read from the card when the station polls.
    """

    __tablename__ = "nfc_write_requests"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'done', 'failed')", name="status"),
        Index("ix_nfc_write_requests_station_status", "station_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    card_id: Mapped[str] = mapped_column(ForeignKey("cards.card_id"), index=True)
    lock: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(8), default="pending")
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(String(200))
    tag_uid: Mapped[str | None] = mapped_column(String(32))


IDENTITY_OUTCOMES = ("matched", "mismatch", "not_found", "deceased", "no_consent", "no_id_number", "rejected")
REVIEW_KINDS = ("mismatch", "name_diacritics", "deceased", "name_change", "id_number_change")
REVIEW_STATUSES = ("open", "accepted", "kept", "flagged")


class IdentitySyncRun(Base):
    """One identity verification run over the consenting members of a chapter subtree (or the whole tree).

    Its work is one :class:`IdentitySyncItem` per member, which workers claim in small batches; the run is done when
    no item is pending or claimed. Members without consent and members verified recently are counted, not queued.
    """

    __tablename__ = "identity_sync_runs"
    __table_args__ = (CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    status: Mapped[str] = mapped_column(String(10), default="queued")
    chapter_id: Mapped[int | None] = mapped_column(ForeignKey("chapters.id"))
    chapter_path: Mapped[str | None] = mapped_column(PathString)
    force: Mapped[bool] = mapped_column(Boolean, default=False)
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    total: Mapped[int] = mapped_column(Integer, default=0)
    skipped_no_consent: Mapped[int] = mapped_column(Integer, default=0)
    skipped_recent: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdentitySyncItem(Base):
    """The verification of one member in one run: claimed by a worker, then done with the registry's outcome.

    ``differing_fields`` names the member fields the registry disagrees with (never their values).
    """

    __tablename__ = "identity_sync_items"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'claimed', 'done', 'failed')", name="status"),
        UniqueConstraint("run_id", "member_id", name="uq_identity_sync_items_run_member"),
        Index("ix_identity_sync_items_run_status", "run_id", "status"),
        Index("ix_identity_sync_items_member_checked", "member_id", "checked_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("identity_sync_runs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    status: Mapped[str] = mapped_column(String(8), default="pending")
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(16))
    differing_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    registry_request_id: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(String(64))
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdentityReview(Base):
    """A difference between a member's record and the registry, waiting for an officer's decision.

    Opened by a sync (mismatch, deceased) or by a registry notification (death, change of name or ID number); the
    member is never changed before an officer accepts. ``registry_values`` holds names and dates only; a new ID
    number from a notification is kept encrypted in ``new_id_number_ciphertext``.
    """

    __tablename__ = "identity_reviews"
    __table_args__ = (
        CheckConstraint("source IN ('sync', 'notification')", name="source"),
        CheckConstraint(
            "kind IN ('mismatch', 'name_diacritics', 'deceased', 'name_change', 'id_number_change')", name="kind"
        ),
        CheckConstraint("status IN ('open', 'accepted', 'kept', 'flagged')", name="status"),
        Index("ix_identity_reviews_member_status", "member_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    source: Mapped[str] = mapped_column(String(12))
    kind: Mapped[str] = mapped_column(String(16))
    sync_item_id: Mapped[int | None] = mapped_column(ForeignKey("identity_sync_items.id"))
    notification_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    differing_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    registry_values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    new_id_number_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(8), default="open")
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[Member] = relationship(lazy="joined", innerjoin=True)


class RegistryCursor(Base):
    """Where the service stopped reading a registry feed (``notifications``)."""

    __tablename__ = "registry_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MembershipPublication(Base):
    """What the registry currently shows about a member's membership (published facts, then their withdrawal).

    ``fact_digest`` is a SHA-256 of the published fields other than the ID number, so an unchanged fact is not sent
    again.
    """

    __tablename__ = "membership_publications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), unique=True)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    card_id: Mapped[str | None] = mapped_column(String(16))
    fact_digest: Mapped[str] = mapped_column(String(64))


MEMBER_LINK_CHANNELS = ("sms", "zalo", "paper")


class MemberLink(Base):
    """A member's personal link to her digital card (``/m/<token>``), sent by SMS or Zalo or printed on paper.

    The token is random and stored only as its SHA-256 hex digest; the raw token is shown once, when the link is
    created. A member has at most one active (not revoked) link, which the partial unique index enforces.
    """

    __tablename__ = "member_links"
    __table_args__ = (
        CheckConstraint("channel IN ('sms', 'zalo', 'paper')", name="channel"),
        Index("uq_member_links_active_member", "member_id", unique=True,
              sqlite_where=text("revoked_at IS NULL"), postgresql_where=text("revoked_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(8))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    member: Mapped[Member] = relationship(lazy="joined", innerjoin=True)


WALLET_CHANNELS = ("apple", "google")
WALLET_UPDATE_STATUSES = ("pending", "claimed", "done", "failed")


class WalletPass(Base):
    """A member's wallet pass (Apple and Google share it): one per member, following her current card.

    ``serial`` is random (the Apple serial number and the Google object id's suffix), never a member or ID number.
    Devices authenticate with a token derived from the serial and the service secret; only its SHA-256 is stored.
    ``apple_issued_at`` / ``google_issued_at``: when a ``.pkpass`` or a save link was first handed out, i.e. which
    services must hear of changes. ``update_tag`` (from the ``wallet_tag`` counter, in commit order) and
    ``modified_at`` are the PassKit web service's update tag and ``Last-Modified``.
    """

    __tablename__ = "wallet_passes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), unique=True)
    serial: Mapped[str] = mapped_column(String(32), unique=True)
    auth_token_hash: Mapped[str] = mapped_column(String(64))
    apple_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    google_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    update_tag: Mapped[int] = mapped_column(BigId, default=0)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[Member] = relationship(lazy="joined", innerjoin=True)


class WalletRegistration(Base):
    """An Apple device that asked for updates of a pass, with its push token (PassKit web service)."""

    __tablename__ = "wallet_registrations"
    __table_args__ = (UniqueConstraint("device_id", "pass_id", name="uq_wallet_registrations_device_pass"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pass_id: Mapped[int] = mapped_column(ForeignKey("wallet_passes.id"), index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    push_token: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WalletUpdate(Base):
    """The outbox of pass changes to send: written in the transaction that changed the card, sent by a worker.

    One pending row per pass and channel (a partial unique index: further changes before it is sent ride along,
    since the worker always sends the pass as it is then). A worker claims a row for a lease, then marks it done, or
    pending again after a growing pause, or failed after the last attempt.
    """

    __tablename__ = "wallet_updates"
    __table_args__ = (
        CheckConstraint("channel IN ('apple', 'google')", name="channel"),
        CheckConstraint("status IN ('pending', 'claimed', 'done', 'failed')", name="status"),
        Index("uq_wallet_updates_pending", "pass_id", "channel", unique=True,
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
        Index("ix_wallet_updates_status_due", "status", "not_before"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pass_id: Mapped[int] = mapped_column(ForeignKey("wallet_passes.id"), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
