"""Identity-verification coverage per chapter, from each member's latest registry answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, aliased

from cardsvc.db.models import Chapter, IdentitySyncItem, Member
from cardsvc.services.context import Actor, subtree_condition
from cardsvc.services.identity.scope import (
    CHECKED_OUTCOMES,
    IDENTITY_CONSENT,
    VERIFIABLE_STATUSES,
    consent_clause,
    scope_path,
)


@dataclass(frozen=True)
class CoverageRow:
    """Identity-verification coverage of the current members of one chapter (its own members, not its subtree)."""

    chapter_id: int
    code: str
    name: str
    members: int
    verified: int = 0
    mismatch: int = 0
    not_found: int = 0
    deceased: int = 0
    no_consent: int = 0
    pending: int = 0


def coverage(session: Session, actor: Actor, chapter_id: int | None) -> list[CoverageRow]:
    """Per chapter in the subtree: members verified, mismatching, not found, deceased per the registry, without
    consent, or still to be verified (consent but no answer yet), from each member's latest answer."""
    _chapter, path = scope_path(session, actor, chapter_id)
    latest = (
        select(IdentitySyncItem.member_id, func.max(IdentitySyncItem.id).label("item_id"))
        .where(IdentitySyncItem.status == "done", IdentitySyncItem.outcome.in_(CHECKED_OUTCOMES))
        .group_by(IdentitySyncItem.member_id).subquery()
    )
    last = aliased(IdentitySyncItem)
    per_member = (
        select(Member.chapter_id.label("chapter_id"), case(
            (~consent_clause(IDENTITY_CONSENT), "no_consent"),
            (last.outcome.is_(None), "pending"),
            else_=last.outcome,
        ).label("category"))
        .join(Member.chapter).outerjoin(latest, latest.c.member_id == Member.id)
        .outerjoin(last, last.id == latest.c.item_id)
        .where(Member.status.in_(VERIFIABLE_STATUSES))
    )
    if path is not None:
        per_member = per_member.where(subtree_condition(Chapter.path, path))
    buckets = per_member.subquery()
    stmt = (
        select(Chapter.id, Chapter.code, Chapter.name, buckets.c.category, func.count())
        .join(buckets, buckets.c.chapter_id == Chapter.id)
        .group_by(Chapter.id, Chapter.code, Chapter.name, buckets.c.category)
    )
    counts: dict[int, dict[str, Any]] = {}
    for chapter_row_id, code, name, bucket, count in session.execute(stmt):
        row = counts.setdefault(chapter_row_id, {"chapter_id": chapter_row_id, "code": code, "name": name,
                                                 "members": 0})
        key = "verified" if bucket == "matched" else str(bucket)
        row[key] = row.get(key, 0) + int(count)
        row["members"] += int(count)
    return [CoverageRow(**row) for _id, row in sorted(counts.items(), key=lambda item: item[1]["code"])]
