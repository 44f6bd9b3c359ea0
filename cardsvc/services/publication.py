"""What the issuer publishes for verifiers: the JWKS, the trust anchor, and the signed trust bundle."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import SigningKey, StatusList
from cardsvc.errors import NotFound
from cardsvc.services.keys import KeyRing, algorithm_number, public_key_of
from cardsvc.settings import Settings
from issuance.jws import sign_jwt
from verification.crypto import public_jwk
from verification.format import FORMAT_VERSION, QR_PREFIX
from verification.trust import TRUST_BUNDLE_TYP


def key_jwk(key: SigningKey) -> dict[str, Any]:
    return public_jwk(bytes.fromhex(key.kid), algorithm_number(key), public_key_of(key))


def jwks(session: Session) -> dict[str, Any]:
    """Card-verification keys that still verify (active and retired; never compromised ones)."""
    keys = session.scalars(
        select(SigningKey).where(SigningKey.purpose == "card", SigningKey.status != "compromised")
        .order_by(SigningKey.id)
    ).all()
    return {"keys": [key_jwk(key) for key in keys]}


def trust_anchor(session: Session) -> dict[str, Any]:
    key = session.scalar(select(SigningKey).where(SigningKey.purpose == "trust", SigningKey.status == "active"))
    if key is None:
        raise NotFound("no trust key has been created yet")
    return key_jwk(key)


# The issuer's name in trust and event bundles when no public address is configured.
UNADDRESSED_ISSUER = "cardsvc"


def issuer(settings: Settings) -> str:
    """The ``iss`` of trust and event bundles: the configured public address, or :data:`UNADDRESSED_ISSUER`.

    Never the address of a request: a station compares the event bundle's ``iss`` with its trust bundle's, and
    signed status lists are cached per list version whoever asked, so every verifier must be given one name
    however it reaches the server (stations pin the trust key, not this name).
    """
    return settings.public_base_url or UNADDRESSED_ISSUER


def status_list_uri(settings: Settings, list_id: int) -> str:
    """The list's address (its status-list JWT's ``sub``): absolute under a configured public address, otherwise
    the path, which a verifier resolves against the server it talks to."""
    return f"{settings.public_base_url or ''}/v1/status-lists/{list_id}"


def trust_bundle(session: Session, keyring: KeyRing, settings: Settings) -> str:
    """Card keys with their status, status-list locations and issuer metadata, signed by the trust key."""
    _key, signer = keyring.active_signer(session, "trust")
    now = utcnow()
    card_keys = session.scalars(
        select(SigningKey).where(SigningKey.purpose == "card").order_by(SigningKey.id)
    ).all()
    lists = session.scalars(select(StatusList.id).order_by(StatusList.id)).all()
    payload = {
        "iss": issuer(settings),
        "issuer_name": settings.union_name,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(days=settings.trust_bundle_days)).timestamp()),
        "format": {"qr_prefix": QR_PREFIX, "version": FORMAT_VERSION},
        "keys": [{**key_jwk(key), "status": key.status} for key in card_keys],
        "status_lists": [{"id": list_id, "uri": status_list_uri(settings, list_id), "bits": 2} for list_id in lists],
    }
    return sign_jwt(signer, payload, typ=TRUST_BUNDLE_TYP)
