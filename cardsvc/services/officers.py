"""Officer accounts and login (Argon2 hashes, lockout with exponential backoff, short-lived tokens)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import OFFICER_ROLES, Chapter, Officer
from cardsvc.errors import AuthenticationFailed, Conflict, NotFound, TooManyRequests, ValidationFailed
from cardsvc.security import AccessToken, OfficerTokens, burn_password_check, hash_password, verify_password
from cardsvc.services import audit
from cardsvc.services.chapters import get_chapter
from cardsvc.services.context import Actor

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
KNOWN_PERMISSIONS = frozenset({"pii"})
MIN_PASSWORD_LENGTH = 10
MAX_LOCKOUT = timedelta(hours=1)


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


def set_active(session: Session, actor: Actor, officer_id: int, active: bool) -> Officer:
    actor.require_admin()
    officer = get_officer(session, actor, officer_id)
    officer.is_active = active
    if active:
        officer.failed_logins = 0
        officer.locked_until = None
    audit.record(session, actor, "officer.activate" if active else "officer.deactivate", target_type="officer",
                 target_id=officer.id, chapter_path=officer.chapter.path if officer.chapter else None)
    session.commit()
    return officer


def change_password(session: Session, actor: Actor, *, current_password: str, new_password: str) -> None:
    officer = session.get(Officer, actor.id) if actor.id is not None else None
    if officer is None or not verify_password(officer.password_hash, current_password):
        raise AuthenticationFailed("the current password is wrong")
    _validate_password(new_password)
    officer.password_hash = hash_password(new_password)
    audit.record(session, actor, "officer.password", target_type="officer", target_id=officer.id,
                 chapter_path=officer.chapter.path if officer.chapter else None)
    session.commit()


def login(
    session: Session,
    tokens: OfficerTokens,
    *,
    username: str,
    password: str,
    max_failures: int,
    lockout_seconds: int,
    request_id: str | None = None,
) -> AccessToken:
    """Check a password and issue an access token.

    After ``max_failures`` wrong passwords in a row the account is locked for ``lockout_seconds``, doubling with
    each further failure (capped at one hour). A locked account refuses even the right password until the lock
    expires, so guessing cannot continue; the error says when to retry.
    """
    now = utcnow()
    officer = session.scalar(select(Officer).where(Officer.username == username.strip().lower()[:64]))
    if officer is None or not officer.is_active:
        burn_password_check(password)
        raise AuthenticationFailed("wrong username or password")
    if officer.locked_until is not None and officer.locked_until > now:
        retry = math.ceil((officer.locked_until - now).total_seconds())
        raise TooManyRequests(f"too many failed logins; try again in {retry} seconds", retry_after=retry,
                              code="account_locked")
    actor = actor_for(officer, request_id)
    path = officer.chapter.path if officer.chapter else None
    if not verify_password(officer.password_hash, password):
        officer.failed_logins += 1
        if officer.failed_logins >= max_failures:
            exponent = min(officer.failed_logins - max_failures, 12)
            lock = min(timedelta(seconds=lockout_seconds * 2**exponent), MAX_LOCKOUT)
            officer.locked_until = now + lock
        audit.record(session, actor, "auth.login_failed", target_type="officer", target_id=officer.id,
                     chapter_path=path, details={"failed_logins": officer.failed_logins})
        session.commit()
        raise AuthenticationFailed("wrong username or password")
    officer.failed_logins = 0
    officer.locked_until = None
    officer.last_login_at = now
    audit.record(session, actor, "auth.login", target_type="officer", target_id=officer.id, chapter_path=path)
    session.commit()
    return tokens.issue(officer.id, now)


def officer_for_token(session: Session, officer_id: int) -> Officer:
    officer = session.get(Officer, officer_id)
    if officer is None or not officer.is_active:
        raise AuthenticationFailed("this account is disabled or no longer exists", code="invalid_token")
    return officer
