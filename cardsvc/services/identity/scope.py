"""What the identity modules share: the consents, the members a registry call may be about, and the chapter subtree
an officer asks about."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists
from sqlalchemy.orm import Session

from cardsvc.db.models import Chapter, Consent, Member
from cardsvc.services.chapters import get_chapter
from cardsvc.services.context import Actor

IDENTITY_CONSENT = "identity_verification"
PUBLICATION_CONSENT = "registry_publication"
# Outcomes that are an answer of the registry about the person (the others say why nothing was asked).
CHECKED_OUTCOMES = ("matched", "mismatch", "not_found", "deceased")
VERIFIABLE_STATUSES = ("active", "suspended")


def scope_path(session: Session, actor: Actor, chapter_id: int | None) -> tuple[Chapter | None, str | None]:
    if chapter_id is None:
        return None, actor.scope_path
    chapter = get_chapter(session, actor, chapter_id)
    return chapter, chapter.path


def consent_clause(purpose: str) -> Any:
    return exists().where(Consent.member_id == Member.id, Consent.purpose == purpose, Consent.withdrawn_at.is_(None))
