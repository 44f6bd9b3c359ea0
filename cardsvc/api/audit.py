"""The audit trail, within the officer's scope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from cardsvc.api.deps import OfficerDep, SessionDep
from cardsvc.api.schemas import AuditOut, Id
from cardsvc.services import audit

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/audit", response_model=list[AuditOut])
def query_audit(
    actor: OfficerDep,
    session: SessionDep,
    action: Annotated[str | None, Query(max_length=64)] = None,
    target_type: Annotated[str | None, Query(max_length=32)] = None,
    target_id: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: Id | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """Newest first; page with ``before_id`` (the smallest id of the previous page)."""
    entries = audit.query(session, actor, audit.AuditQuery(
        action=action, target_type=target_type, target_id=target_id, since=since, until=until,
        before_id=before_id, limit=limit,
    ))
    return [AuditOut.model_validate(e, from_attributes=True) for e in entries]
