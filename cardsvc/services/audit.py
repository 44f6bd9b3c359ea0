"""The audit trail: one append-only row for every write and every read of unmasked personal data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import AuditEntry
from cardsvc.services.context import Actor


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    target_type: str,
    target_id: str | int | None,
    chapter_path: str | None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit entry to the current transaction (it commits, or vanishes, with the change it describes).

    ``details`` must never hold an ID number, birth date or phone number: name the fields that changed instead.
    """
    entry = AuditEntry(
        at=utcnow(),
        actor_type=actor.kind,
        actor_id=actor.id,
        actor_name=actor.name,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        chapter_path=chapter_path,
        request_id=actor.request_id,
        details=details or {},
    )
    session.add(entry)
    return entry


@dataclass(frozen=True)
class AuditQuery:
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    limit: int = 100


def query(session: Session, actor: Actor, q: AuditQuery) -> Sequence[AuditEntry]:
    """Audit entries inside the actor's scope, newest first. Entries without a chapter are for admins only."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(q.limit)
    if actor.scope_path is not None:
        stmt = stmt.where(actor.scope_condition(AuditEntry.chapter_path))
    if q.action:
        # autoescape: '%' and '_' in the filter are characters of an action name, not wildcards.
        stmt = stmt.where(or_(AuditEntry.action == q.action,
                              AuditEntry.action.startswith(q.action + ".", autoescape=True)))
    if q.target_type:
        stmt = stmt.where(AuditEntry.target_type == q.target_type)
    if q.target_id:
        stmt = stmt.where(AuditEntry.target_id == q.target_id)
    if q.since:
        stmt = stmt.where(AuditEntry.at >= q.since)
    if q.until:
        stmt = stmt.where(AuditEntry.at < q.until)
    if q.before_id:
        stmt = stmt.where(AuditEntry.id < q.before_id)
    return session.scalars(stmt).all()
