"""Cryptographic helpers of the service shell: PII encryption, blind indexes, passwords and officer tokens.

Card-signing keys are not here (they belong to ``issuance``); the officer-token key is derived from the service
secret under its own label, so it can never verify or sign a card.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cardsvc.settings import Settings

_CIPHERTEXT_VERSION = b"\x01"
_TOKEN_ALGORITHM = "HS256"


class DecryptionError(Exception):
    """Stored personal data could not be decrypted (wrong key or damaged value)."""


class PiiCipher:
    """AES-256-GCM encryption of personal data fields plus an HMAC-SHA256 blind index for exact look-up.

    The field name is bound as associated data, so a ciphertext cannot be moved from one column to another.
    """

    def __init__(self, encryption_key: bytes, index_key: bytes) -> None:
        self._aead = AESGCM(encryption_key)
        self._index_key = index_key

    @classmethod
    def from_settings(cls, settings: Settings) -> PiiCipher:
        return cls(settings.derived_key("pii-encryption"), settings.derived_key("pii-blind-index"))

    def encrypt(self, field: str, plaintext: str) -> bytes:
        nonce = os.urandom(12)
        return _CIPHERTEXT_VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), field.encode())

    def decrypt(self, field: str, ciphertext: bytes) -> str:
        if len(ciphertext) < 29 or ciphertext[:1] != _CIPHERTEXT_VERSION:
            raise DecryptionError(f"{field}: unknown ciphertext format")
        try:
            return self._aead.decrypt(ciphertext[1:13], ciphertext[13:], field.encode()).decode()
        except InvalidTag as exc:
            raise DecryptionError(f"{field}: ciphertext does not authenticate") from exc

    def blind_index(self, field: str, value: str) -> str:
        # hmac.digest: the same HMAC-SHA256 as hmac.new(...).hexdigest(), in one C call (imports index every row).
        return hmac.digest(self._index_key, field.encode() + b"\x00" + value.encode(), hashlib.sha256).hex()


# Argon2id with the library's RFC 9106 "low memory" defaults: ~50 ms per hash on a small server.
_password_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Check a password against its Argon2 hash (constant-time inside argon2)."""
    try:
        return _password_hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# Verifying against a fixed hash when the username is unknown keeps the response time the same for both cases.
_DUMMY_HASH = _password_hasher.hash(secrets.token_urlsafe(16))


def burn_password_check(password: str) -> None:
    verify_password(_DUMMY_HASH, password)


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class TokenClaims:
    """What a verified access token says: whose it is, the officer's session epoch when it was issued, and when she
    typed her password (``auth_time``, kept through refreshes)."""

    officer_id: int
    session_id: str
    epoch: int
    auth_time: datetime


class InvalidToken(Exception):
    """The bearer token is missing, malformed, expired, for another audience, or forged."""


class OfficerTokens:
    """Short-lived officer access tokens: HS256 JWTs under a key derived for this purpose only.

    The algorithm is fixed here and passed to ``jwt.decode`` as the only allowed one; the token's header never
    chooses it. No token outlives ``max_session`` after the password login it descends from.
    """

    def __init__(self, key: bytes, *, issuer: str, audience: str, lifetime: timedelta,
                 max_session: timedelta) -> None:
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._lifetime = lifetime
        self._max_session = max_session

    @classmethod
    def from_settings(cls, settings: Settings) -> OfficerTokens:
        return cls(
            settings.derived_key("officer-token"),
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            lifetime=timedelta(minutes=settings.access_token_minutes),
            max_session=timedelta(hours=settings.session_max_hours),
        )

    def issue(self, officer_id: int, *, epoch: int, auth_time: datetime, now: datetime | None = None) -> AccessToken:
        """A token for ``lifetime``, cut short where the session that began at ``auth_time`` ends.

        Raises:
            InvalidToken: That session has ended already (a refresh too late).
        """
        issued = now or datetime.now(UTC)
        expires = min(issued + self._lifetime, auth_time + self._max_session)
        if expires <= issued:
            raise InvalidToken("the session has reached its time limit")
        claims = {
            "sub": str(officer_id),
            "iss": self._issuer,
            "aud": self._audience,
            "iat": int(issued.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": secrets.token_urlsafe(12),
            "auth_time": int(auth_time.timestamp()),
            "sep": epoch,
        }
        return AccessToken(jwt.encode(claims, self._key, algorithm=_TOKEN_ALGORITHM), expires)

    def verify(self, token: str) -> TokenClaims:
        if len(token) > 2048:
            raise InvalidToken("token too long")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_TOKEN_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["sub", "exp", "iat", "iss", "aud", "jti", "auth_time", "sep"]},
            )
            return TokenClaims(officer_id=int(claims["sub"]), session_id=str(claims["jti"]),
                               epoch=int(claims["sep"]),
                               auth_time=datetime.fromtimestamp(int(claims["auth_time"]), UTC))
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidToken(str(exc)) from exc
