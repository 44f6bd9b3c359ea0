"""Password login and the sessions it opens: access tokens for the API, server-side sessions for the officer pages.

Wrong passwords are counted per officer and client address (``login_addresses``; an IPv6 client counts by its /64,
which one subscriber usually holds whole). ``max_failures`` in a row pause logins of that pair for
``lockout_seconds``, doubling with each further failure up to an hour. So a guesser at one address pauses only
herself, and cannot lock an administrator out of the address she works at. A guesser spread over many
addresses is met by a pause of the whole account for *unknown* addresses (those she has not signed in from in the
last ``KNOWN_ADDRESS_AGE``) after ``UNKNOWN_ADDRESS_FACTOR`` × ``max_failures`` failures from them; known addresses
keep only their own count.

An unknown or disabled username, a wrong password and a paused login all get the same answer (401, one message, no
``Retry-After``), and each costs one Argon2 verification (which dominates the time of the answer), so that no answer
tells whether a username exists. The per-address request limit (``ratelimit.py``) applies before the username is even
looked at.

Every session descends from one password login (``auth_time``) and ends ``session_max_hours`` later at the latest:
tokens carry that time through refreshes, and the officer pages' sessions keep their creation time. Bumping the
officer's ``session_epoch``, carried in every token, ends all her tokens at once (a password change, a disable, "sign
out everywhere": ``services/officers.py``).
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import AdminSession, LoginAddress, Officer
from cardsvc.errors import AuthenticationFailed
from cardsvc.security import AccessToken, InvalidToken, OfficerTokens, TokenClaims, burn_password_check, verify_password
from cardsvc.services import audit
from cardsvc.services.officers import actor_for

# An address she signed in from within this time is hers: the pause of the account for unknown addresses spares it.
KNOWN_ADDRESS_AGE = timedelta(days=30)
UNKNOWN_ADDRESS_FACTOR = 4
MAX_PAUSE = timedelta(hours=1)
# A page session's last_seen_at is written at most once a minute, not on every page.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)
WRONG_CREDENTIALS = "wrong username or password (after repeated failures, sign-in pauses for a while)"


def address_key(address: str) -> str:
    """The key a client address is counted under: the address itself, an IPv6 address's /64 network, or (for an
    IPv4 address mapped into IPv6) the IPv4 address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _pause(failures: int, threshold: int, lockout_seconds: int) -> timedelta | None:
    if failures < threshold:
        return None
    return min(timedelta(seconds=lockout_seconds * 2 ** min(failures - threshold, 12)), MAX_PAUSE)


def _pair(session: Session, officer_id: int, address: str) -> LoginAddress:
    """The pair's row, created if missing (``ON CONFLICT DO NOTHING``: two first attempts at once both succeed)."""
    connection = session.connection()
    insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(LoginAddress).values(officer_id=officer_id, address=address, failures=0)
                    .on_conflict_do_nothing())
    return session.scalars(select(LoginAddress).where(LoginAddress.officer_id == officer_id,
                                                      LoginAddress.address == address)).one()


def _record_failure(session: Session, officer: Officer, address: str, *, known: bool, now: datetime,
                    max_failures: int, lockout_seconds: int) -> int:
    """Count a wrong password for the pair (and for the account when the address is unknown); returns the pair's
    count. The counts are incremented in SQL so that concurrent failures are all counted."""
    pair = _pair(session, officer.id, address)
    pair.failures = LoginAddress.failures + 1
    pair.last_failure_at = now
    session.flush()
    pause = _pause(pair.failures, max_failures, lockout_seconds)
    if pause is not None:
        pair.locked_until = now + pause
    if not known:
        officer.failed_logins = Officer.failed_logins + 1
        session.flush()
        pause = _pause(officer.failed_logins, max_failures * UNKNOWN_ADDRESS_FACTOR, lockout_seconds)
        if pause is not None:
            officer.locked_until = now + pause
    return pair.failures


def _record_success(session: Session, officer: Officer, address: str, now: datetime) -> None:
    pair = _pair(session, officer.id, address)
    pair.failures = 0
    pair.locked_until = None
    pair.last_success_at = now
    officer.failed_logins = 0
    officer.locked_until = None
    officer.last_login_at = now
    # Forget addresses that are neither known nor paused any more, so that the table stays small.
    session.execute(delete(LoginAddress).where(
        LoginAddress.officer_id == officer.id, LoginAddress.id != pair.id,
        or_(LoginAddress.last_success_at.is_(None), LoginAddress.last_success_at < now - KNOWN_ADDRESS_AGE),
        or_(LoginAddress.last_failure_at.is_(None), LoginAddress.last_failure_at < now - MAX_PAUSE),
    ))


def _authenticate(session: Session, *, username: str, password: str, address: str, max_failures: int,
                  lockout_seconds: int, request_id: str | None) -> tuple[Officer, datetime]:
    """Check a password from ``address``; returns the officer and the time of the login, which the caller commits.
    A failure is counted and committed here before the one answer for every failure is raised."""
    now = utcnow()
    key = address_key(address)
    officer = session.scalar(select(Officer).where(Officer.username == username.strip().lower()[:64]))
    if officer is None or not officer.is_active:
        burn_password_check(password)
        raise AuthenticationFailed(WRONG_CREDENTIALS)
    pair = session.scalar(select(LoginAddress).where(LoginAddress.officer_id == officer.id,
                                                     LoginAddress.address == key))
    known = pair is not None and pair.last_success_at is not None and pair.last_success_at > now - KNOWN_ADDRESS_AGE
    paused = (pair is not None and pair.locked_until is not None and pair.locked_until > now) or (
        not known and officer.locked_until is not None and officer.locked_until > now)
    if paused:
        # Not counted (a guesser cannot stretch the pause) and not audited (nor can she flood the log).
        burn_password_check(password)
        raise AuthenticationFailed(WRONG_CREDENTIALS)
    actor = actor_for(officer, request_id)
    path = officer.chapter.path if officer.chapter else None
    if not verify_password(officer.password_hash, password):
        failures = _record_failure(session, officer, key, known=known, now=now, max_failures=max_failures,
                                   lockout_seconds=lockout_seconds)
        audit.record(session, actor, "auth.login_failed", target_type="officer", target_id=officer.id,
                     chapter_path=path, details={"failed_logins": failures, "known_address": known})
        session.commit()
        raise AuthenticationFailed(WRONG_CREDENTIALS)
    _record_success(session, officer, key, now)
    audit.record(session, actor, "auth.login", target_type="officer", target_id=officer.id, chapter_path=path)
    return officer, now


def login(session: Session, tokens: OfficerTokens, *, username: str, password: str, address: str,
          max_failures: int, lockout_seconds: int, request_id: str | None = None) -> AccessToken:
    """Check a password from a client address and issue an access token.

    Raises:
        AuthenticationFailed: Unknown or disabled username, wrong password, or logins of this account from this
            address paused: one answer for all.
    """
    officer, now = _authenticate(session, username=username, password=password, address=address,
                                 max_failures=max_failures, lockout_seconds=lockout_seconds, request_id=request_id)
    session.commit()
    return tokens.issue(officer.id, epoch=officer.session_epoch, auth_time=now, now=now)


def bearer(session: Session, tokens: OfficerTokens, token: str | None) -> tuple[Officer, TokenClaims]:
    """The officer behind a bearer token and its claims, if the token is valid, she is active, and her sessions
    have not been ended since it was issued.

    Raises:
        AuthenticationFailed: ``invalid_token`` otherwise.
    """
    if not token:
        raise AuthenticationFailed("authentication required: send a bearer token", code="invalid_token")
    try:
        claims = tokens.verify(token)
    except InvalidToken as exc:
        raise AuthenticationFailed("the access token is invalid or expired", code="invalid_token") from exc
    officer = session.get(Officer, claims.officer_id)
    if officer is None or not officer.is_active:
        raise AuthenticationFailed("this account is disabled or no longer exists", code="invalid_token")
    if officer.session_epoch != claims.epoch:
        raise AuthenticationFailed("this session has been ended (password change or sign-out everywhere)",
                                   code="invalid_token")
    return officer, claims


def refresh(session: Session, tokens: OfficerTokens, token: str | None) -> AccessToken:
    """A fresh token for a still-valid one, within the time limit of the password login it descends from.

    Raises:
        AuthenticationFailed: ``invalid_token`` for a token :func:`bearer` refuses, or at the session's limit.
    """
    officer, claims = bearer(session, tokens, token)
    try:
        return tokens.issue(officer.id, epoch=claims.epoch, auth_time=claims.auth_time)
    except InvalidToken as exc:
        raise AuthenticationFailed("the session has reached its time limit: sign in again",
                                   code="invalid_token") from exc


def sign_in_page(session: Session, *, username: str, password: str, address: str, max_failures: int,
                 lockout_seconds: int, request_id: str | None = None) -> AdminSession:
    """Check a password like :func:`login` and open a session of the officer pages.

    Raises:
        AuthenticationFailed: As :func:`login`.
    """
    officer, now = _authenticate(session, username=username, password=password, address=address,
                                 max_failures=max_failures, lockout_seconds=lockout_seconds, request_id=request_id)
    page_session = AdminSession(officer_id=officer.id, created_at=now, last_seen_at=now)
    session.add(page_session)
    session.commit()
    return page_session


def resume_page_session(session: Session, session_id: int, *, idle: timedelta, limit: timedelta) -> Officer:
    """The officer of an open page session, which this request keeps alive.

    Raises:
        AuthenticationFailed: The session was ended (logout, sign-out everywhere, password change, disable), was
            idle longer than ``idle``, is older than ``limit``, or its officer is disabled.
    """
    now = utcnow()
    page_session = session.get(AdminSession, session_id)
    if page_session is None or page_session.ended_at is not None or now - page_session.last_seen_at > idle \
            or now - page_session.created_at > limit or not page_session.officer.is_active:
        raise AuthenticationFailed("this session has ended: sign in again", code="invalid_token")
    if now - page_session.last_seen_at > LAST_SEEN_RESOLUTION:
        page_session.last_seen_at = now
        session.commit()
    return page_session.officer


def end_page_session(session: Session, session_id: int) -> None:
    """Logout: the session's cookie is worthless from now on."""
    page_session = session.get(AdminSession, session_id)
    if page_session is not None and page_session.ended_at is None:
        page_session.ended_at = utcnow()
        session.commit()
