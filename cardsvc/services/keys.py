"""Signing keys: creation, rotation, retirement (including compromise), and the in-memory key ring."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import Card, SigningKey
from cardsvc.errors import Conflict, NotFound, ValidationFailed
from cardsvc.services import audit, status_lists
from cardsvc.services.context import Actor
from issuance.keys import (
    ALGORITHMS,
    AlgorithmName,
    LocalSigner,
    algorithm_of,
    decrypt_private_key,
    encrypt_private_key,
    generate_private_key,
    new_kid,
    public_spki,
)
from verification.crypto import PublicKey, load_public_key
from verification.format import ALGORITHM_NAMES

PURPOSES = ("card", "trust")


class KeyRing:
    """Decrypted signers, cached per key id for the life of the process (decrypting PKCS#8 is deliberately slow)."""

    def __init__(self, kek: bytes) -> None:
        self._kek = kek
        self._signers: dict[tuple[str, bytes], LocalSigner] = {}
        self._lock = threading.Lock()

    def signer_for(self, key: SigningKey) -> LocalSigner:
        if key.status != "active":
            raise Conflict(f"key {key.kid} is {key.status}; it no longer signs", code="key_not_active")
        # Keyed by id and public key: a key id is unique in one database, the pair is unique everywhere.
        cache_key = (key.kid, key.public_key)
        with self._lock:
            signer = self._signers.get(cache_key)
            if signer is None:
                private = decrypt_private_key(key.private_key_encrypted, self._kek)
                if public_spki(private) != key.public_key:
                    raise Conflict(f"key {key.kid}: private and public parts do not match", code="key_mismatch")
                signer = LocalSigner(bytes.fromhex(key.kid), algorithm_of(private), private)
                self._signers[cache_key] = signer
            return signer

    def active_signer(self, session: Session, purpose: str) -> tuple[SigningKey, LocalSigner]:
        key = active_key(session, purpose)
        if key is None:
            raise Conflict(
                f"there is no active {purpose} signing key; an administrator creates one with "
                f"`cardsvc keys create --purpose {purpose}`",
                code="no_signing_key",
            )
        return key, self.signer_for(key)


def public_key_of(key: SigningKey) -> PublicKey:
    return load_public_key(_algorithm_number(key.algorithm), key.public_key)


def _algorithm_number(name: str) -> int:
    return {v: k for k, v in ALGORITHM_NAMES.items()}[name]


def algorithm_number(key: SigningKey) -> int:
    return _algorithm_number(key.algorithm)


def active_key(session: Session, purpose: str) -> SigningKey | None:
    return session.scalar(select(SigningKey).where(SigningKey.purpose == purpose, SigningKey.status == "active"))


def list_keys(session: Session, actor: Actor) -> Sequence[SigningKey]:
    """Every signing key with its status (administrators only)."""
    actor.require_admin()
    return session.scalars(select(SigningKey).order_by(SigningKey.id)).all()


def get_key(session: Session, kid: str) -> SigningKey:
    key = session.scalar(select(SigningKey).where(SigningKey.kid == kid.lower()))
    if key is None:
        raise NotFound(f"no signing key {kid}")
    return key


def _check(purpose: str, algorithm: str) -> AlgorithmName:
    if purpose not in PURPOSES:
        raise ValidationFailed("purpose must be card or trust", details=[{"field": "purpose", "code": "invalid"}])
    if algorithm not in ALGORITHMS:
        raise ValidationFailed("algorithm must be ed25519 or es256",
                               details=[{"field": "algorithm", "code": "invalid"}])
    return algorithm


def _new_key(session: Session, kek: bytes, purpose: str, algorithm: AlgorithmName) -> SigningKey:
    taken = set(session.scalars(select(SigningKey.kid)))
    kid = new_kid().hex()
    while kid in taken:  # 65,536 possible ids; a clash would bind one id to two keys.
        kid = new_kid().hex()
    private = generate_private_key(algorithm)
    key = SigningKey(
        kid=kid, purpose=purpose, algorithm=ALGORITHM_NAMES[ALGORITHMS[algorithm]], public_key=public_spki(private),
        private_key_encrypted=encrypt_private_key(private, kek), status="active",
    )
    session.add(key)
    return key


def create_key(session: Session, actor: Actor, kek: bytes, *, purpose: str = "card",
               algorithm: str = "ed25519") -> SigningKey:
    """Create the first active key of a purpose (use :func:`rotate` when one exists)."""
    actor.require_admin()
    alg = _check(purpose, algorithm)
    if active_key(session, purpose) is not None:
        raise Conflict(f"an active {purpose} key exists; rotate it instead", code="active_key_exists")
    key = _new_key(session, kek, purpose, alg)
    session.flush()
    audit.record(session, actor, "key.create", target_type="signing_key", target_id=key.kid, chapter_path=None,
                 details={"purpose": purpose, "algorithm": key.algorithm})
    session.commit()
    return key


def rotate(session: Session, actor: Actor, kek: bytes, *, purpose: str = "card",
           algorithm: str = "ed25519") -> tuple[SigningKey, SigningKey | None]:
    """Make a new key the active signer; the previous one is retired and keeps verifying its cards."""
    actor.require_admin()
    alg = _check(purpose, algorithm)
    previous = active_key(session, purpose)
    if previous is not None:
        previous.status = "retired"
        previous.retired_at = utcnow()
        session.flush()
    key = _new_key(session, kek, purpose, alg)
    session.flush()
    audit.record(session, actor, "key.rotate", target_type="signing_key", target_id=key.kid, chapter_path=None,
                 details={"purpose": purpose, "algorithm": key.algorithm,
                          "retired": previous.kid if previous else None})
    session.commit()
    return key, previous


@dataclass(frozen=True)
class Retirement:
    key: SigningKey
    cards_to_reissue: Sequence[Card]


def retire(session: Session, actor: Actor, kid: str, *, compromised: bool) -> Retirement:
    """Retire a key. A compromised key also revokes every current card it signed (reason ``key_compromised``),
    so that stations refuse them by key status and by status list; the cards are returned for reissue."""
    actor.require_admin()
    key = get_key(session, kid)
    if key.status == "compromised" or (key.status == "retired" and not compromised):
        raise Conflict(f"key {key.kid} is already {key.status}", code="key_already_retired")
    key.status = "compromised" if compromised else "retired"
    key.retired_at = utcnow()
    affected: Sequence[Card] = []
    if compromised and key.purpose == "card":
        affected = session.scalars(
            select(Card).where(Card.signing_key_id == key.id, Card.status.in_(("active", "suspended")))
        ).all()
        for card in affected:
            status_lists.set_card_status(session, card, "revoked", reason="key_compromised", note=None)
    audit.record(session, actor, "key.compromised" if compromised else "key.retire", target_type="signing_key",
                 target_id=key.kid, chapter_path=None, details={"cards_revoked": len(affected)})
    session.commit()
    return Retirement(key, affected)
