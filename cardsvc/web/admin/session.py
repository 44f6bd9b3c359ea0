"""The officer pages' cookie session and its CSRF token.

The cookie holds ``session id (or none before login) · issued-at · random nonce``, signed with HMAC-SHA256 under
``settings.derived_key("admin-session")`` (a key used for nothing else). The session id names a row of
``admin_sessions`` (``services/logins.py``): the server decides whether the session is still open, so logout ends it
for good. The session ends after ``idle`` (the access-token lifetime) without a request and ``lifetime``
(CARDSVC_SESSION_MAX_HOURS) after the login at the latest; the cookie itself is refused after ``lifetime``. Every
session, even the anonymous one that carries the login form, has a CSRF token derived from its nonce under the same
key; a new nonce at login and logout means a token seen before signing in is worthless afterwards. Tokens are
compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from cardsvc.settings import Settings

COOKIE_NAME = "cardsvc_admin"
LANGUAGE_COOKIE = "cardsvc_lang"
CSRF_FIELD = "csrf_token"
MAX_COOKIE_LENGTH = 512


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class PageSession:
    """One browser's session: ``session_id`` (an ``admin_sessions`` row) is None until a successful login."""

    session_id: int | None
    issued_at: int
    nonce: str


class SessionCodec:
    """Signs, checks and expires :class:`PageSession` cookies; derives and checks CSRF tokens."""

    def __init__(self, key: bytes, *, lifetime: timedelta, idle: timedelta, secure: bool) -> None:
        self._key = key
        self.lifetime = lifetime
        self.idle = idle
        self.secure = secure

    @classmethod
    def from_settings(cls, settings: Settings, *, base_url: str | None = None) -> SessionCodec:
        """The codec of the service; cookies are ``Secure`` when the address (``base_url``, by default the
        configured public address) is HTTPS."""
        address = base_url or settings.public_base_url or ""
        return cls(settings.derived_key("admin-session"), lifetime=timedelta(hours=settings.session_max_hours),
                   idle=timedelta(minutes=settings.access_token_minutes),
                   secure=address.lower().startswith("https://"))

    def new(self, session_id: int | None, now: float | None = None) -> PageSession:
        """A fresh session with a new nonce (and so a new CSRF token)."""
        return PageSession(session_id, int(now if now is not None else time.time()), secrets.token_urlsafe(16))

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, b"session/" + payload.encode(), hashlib.sha256).digest())

    def encode(self, session: PageSession) -> str:
        body = json.dumps({"s": session.session_id, "t": session.issued_at, "n": session.nonce},
                          separators=(",", ":"))
        payload = _b64(body.encode())
        return f"{payload}.{self._sign(payload)}"

    def decode(self, value: str | None, now: float | None = None) -> PageSession | None:
        """The session in a cookie, or None when it is missing, tampered with or expired."""
        if not value or len(value) > MAX_COOKIE_LENGTH or value.count(".") != 1:
            return None
        payload, signature = value.split(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        session_id, issued_at, nonce = data.get("s"), data.get("t"), data.get("n")
        if not (session_id is None or type(session_id) is int) or type(issued_at) is not int \
                or not isinstance(nonce, str):
            return None
        current = now if now is not None else time.time()
        if issued_at > current + 60 or current - issued_at > self.lifetime.total_seconds():
            return None
        return PageSession(session_id, issued_at, nonce)

    def csrf_token(self, session: PageSession) -> str:
        return _b64(hmac.new(self._key, b"csrf/" + session.nonce.encode(), hashlib.sha256).digest())

    def csrf_ok(self, session: PageSession, supplied: str | None) -> bool:
        """Whether a form's token belongs to this session (constant-time comparison)."""
        if not supplied:
            return False
        return hmac.compare_digest(supplied.encode(), self.csrf_token(session).encode())

    @property
    def max_age(self) -> int:
        return int(self.lifetime.total_seconds())
