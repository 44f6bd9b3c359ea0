"""Officer accounts: creation, scope, disabling, password change, and ending all of an officer's sessions.

Password login and the sessions it opens are in ``services/logins.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import OFFICER_ROLES, AdminSession, Chapter, LoginAddress, Officer
from cardsvc.errors import AuthenticationFailed, Conflict, NotFound, ValidationFailed
from cardsvc.security import hash_password, verify_password
from cardsvc.services import audit
from cardsvc.services.chapters import get_chapter
from cardsvc.services.context import Actor

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
KNOWN_PERMISSIONS = frozenset({"pii"})
MIN_PASSWORD_LENGTH = 10


def actor_for(officer: Officer, request_id: str | None = None) -> Actor:
    scope = None if officer.chapter is None else officer.chapter.path
    if officer.role == "admin" and officer.chapter is None:
        scope = None
    return Actor("officer", officer.id, officer.username, officer.role, scope, officer.permission_set, request_id)


def _validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH or len(password) > 256:
        raise ValidationFailed(
            f"the password must have {MIN_PASSWORD_LENGTH} to 256 characters",
            details=[{"field": "password", "code": "weak_password"}],
        )


def create_officer(
    session: Session,
    actor: Actor,
    *,
    username: str,
    password: str,
    role: str,
    chapter_id: int | None,
    full_name: str = "",
    permissions: Iterable[str] = (),
) -> Officer:
    """Create an officer account (administrators only)."""
    actor.require_admin()
    username = username.strip().lower()
    if not USERNAME_RE.fullmatch(username):
        raise ValidationFailed("a username is 3 to 64 characters a-z, 0-9, '.', '_' or '-'",
                               details=[{"field": "username", "code": "invalid_format"}])
    if role not in OFFICER_ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(OFFICER_ROLES)}",
                               details=[{"field": "role", "code": "invalid_role"}])
    perms = sorted(set(permissions))
    unknown = set(perms) - KNOWN_PERMISSIONS
    if unknown:
        raise ValidationFailed(f"unknown permissions: {', '.join(sorted(unknown))}",
                               details=[{"field": "permissions", "code": "unknown_permission"}])
    chapter: Chapter | None = None
    if chapter_id is not None:
        chapter = get_chapter(session, actor, chapter_id)
    elif role != "admin":
        raise ValidationFailed("officers and viewers need a chapter (the root of their scope)",
                               details=[{"field": "chapter_id", "code": "required"}])
    _validate_password(password)
    if session.scalar(select(Officer.id).where(Officer.username == username)) is not None:
        raise Conflict("this username is taken", code="duplicate_username")
    officer = Officer(username=username, full_name=full_name.strip(), password_hash=hash_password(password),
                      role=role, chapter_id=chapter.id if chapter else None, permissions=",".join(perms),
                      is_active=True, failed_logins=0)
    session.add(officer)
    session.flush()
    audit.record(session, actor, "officer.create", target_type="officer", target_id=officer.id,
                 chapter_path=chapter.path if chapter else None,
                 details={"username": username, "role": role, "permissions": perms})
    session.commit()
    session.refresh(officer)
    return officer


def list_officers(session: Session, actor: Actor) -> Sequence[Officer]:
    stmt = select(Officer).outerjoin(Officer.chapter).order_by(Officer.username)
    if actor.scope_path is not None:
        stmt = stmt.where(actor.scope_condition(Chapter.path))
    return session.scalars(stmt).unique().all()


def get_officer(session: Session, actor: Actor, officer_id: int) -> Officer:
    officer = session.get(Officer, officer_id)
    if officer is None or not actor.sees(officer.chapter.path if officer.chapter else None):
        raise NotFound("officer not found")
    return officer


def _end_all_sessions(session: Session, officer: Officer) -> None:
    """End every session of ``officer``: her access tokens (a new session epoch) and her officer-page sessions.

    The caller audits and commits.
    """
    officer.session_epoch = Officer.session_epoch + 1
    session.execute(update(AdminSession).where(AdminSession.officer_id == officer.id,
                                               AdminSession.ended_at.is_(None)).values(ended_at=utcnow()))


def set_active(session: Session, actor: Actor, officer_id: int, active: bool) -> Officer:
    """Disable an account (which ends its sessions) or enable it again (which lifts its login pauses)."""
    actor.require_admin()
    officer = get_officer(session, actor, officer_id)
    officer.is_active = active
    if active:
        officer.failed_logins = 0
        officer.locked_until = None
        session.execute(update(LoginAddress).where(LoginAddress.officer_id == officer.id)
                        .values(failures=0, locked_until=None))
    else:
        _end_all_sessions(session, officer)
    audit.record(session, actor, "officer.activate" if active else "officer.deactivate", target_type="officer",
                 target_id=officer.id, chapter_path=officer.chapter.path if officer.chapter else None)
    session.commit()
    return officer


def sign_out_everywhere(session: Session, actor: Actor, officer_id: int) -> None:
    """End every session of an officer: her own, or (administrators only) another officer's."""
    if officer_id != actor.id:
        actor.require_admin()
    officer = get_officer(session, actor, officer_id)
    _end_all_sessions(session, officer)
    audit.record(session, actor, "officer.sign_out_everywhere", target_type="officer", target_id=officer.id,
                 chapter_path=officer.chapter.path if officer.chapter else None)
    session.commit()


def change_password(session: Session, actor: Actor, *, current_password: str, new_password: str) -> None:
    """Change the acting officer's password; every session she has (this one included) ends with it."""
    officer = session.get(Officer, actor.id) if actor.id is not None else None
    if officer is None or not verify_password(officer.password_hash, current_password):
        raise AuthenticationFailed("the current password is wrong")
    _validate_password(new_password)
    officer.password_hash = hash_password(new_password)
    _end_all_sessions(session, officer)
    audit.record(session, actor, "officer.password", target_type="officer", target_id=officer.id,
                 chapter_path=officer.chapter.path if officer.chapter else None)
    session.commit()
