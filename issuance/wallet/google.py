"""Google Wallet: the union's generic pass class, the member's generic object and the signed "save" JWT.

A save link is ``https://pay.google.com/gp/v/save/<jwt>``: an RS256 JWT signed with the service account's key
(``typ: savetowallet``, ``aud: google``, the origins allowed to show the button) whose payload carries the class and
the object. The object's barcode value is the card's digits-only QR text, as on the printed card. Later changes go
through the Wallet REST API with the same object (``integrations.wallet``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from issuance.wallet.content import TEXTS, WalletCard, day_text, status_texts

SAVE_URL = "https://pay.google.com/gp/v/save/"
BACKGROUND = "#a3154f"
ObjectState = Literal["ACTIVE", "INACTIVE", "EXPIRED"]


def _localized(vi: str, en: str) -> dict[str, Any]:
    return {"defaultValue": {"language": "vi", "value": vi}, "translatedValues": [{"language": "en", "value": en}]}


def _text(key: str) -> dict[str, Any]:
    return _localized(*TEXTS[key])


def object_state(card: WalletCard) -> ObjectState:
    """``ACTIVE``; ``INACTIVE`` for a suspended or revoked card (no longer valid); ``EXPIRED`` past its date."""
    if card.state == "active":
        return "ACTIVE"
    return "EXPIRED" if card.state == "expired" else "INACTIVE"


def generic_class(class_id: str) -> dict[str, Any]:
    """The union's pass class (``<issuer id>.<suffix>``); every member's object refers to it."""
    return {"id": class_id}


def generic_object(card: WalletCard, *, object_id: str, class_id: str, union_name: str,
                   logo_url: str) -> dict[str, Any]:
    """The member's pass object: name, member number, chapter, validity, status and the QR (when a door would
    accept the card)."""
    vi_status, en_status = status_texts(card.state)
    modules = [
        {"id": "member_number", "header": TEXTS["member_number"][0], "body": card.member_number,
         "localizedHeader": _text("member_number")},
        {"id": "chapter", "header": TEXTS["chapter"][0], "body": card.chapter_name,
         "localizedHeader": _text("chapter")},
        {"id": "status", "header": TEXTS["status"][0], "body": vi_status, "localizedHeader": _text("status"),
         "localizedBody": _localized(vi_status, en_status)},
    ]
    if card.expires_on is not None:
        modules.insert(2, {"id": "valid_until", "header": TEXTS["valid_until"][0],
                           "body": day_text(card.expires_on), "localizedHeader": _text("valid_until")})
    body: dict[str, Any] = {
        "id": object_id,
        "classId": class_id,
        "genericType": "GENERIC_TYPE_UNSPECIFIED",
        "state": object_state(card),
        "cardTitle": _localized(union_name, union_name),
        "subheader": _text("card_title"),
        "header": _localized(card.full_name, card.full_name),
        "hexBackgroundColor": BACKGROUND,
        "logo": {"sourceUri": {"uri": logo_url}, "contentDescription": _localized(union_name, union_name)},
        "textModulesData": modules,
    }
    if card.qr_text is not None and not card.void:
        body["barcode"] = {"type": "QR_CODE", "value": card.qr_text, "alternateText": card.member_number}
    if card.issued_on is not None and card.expires_on is not None:
        body["validTimeInterval"] = {"start": {"date": f"{card.issued_on.isoformat()}T00:00:00+07:00"},
                                     "end": {"date": f"{card.expires_on.isoformat()}T23:59:59+07:00"}}
    return body


def save_jwt(*, objects: list[dict[str, Any]], classes: list[dict[str, Any]], issuer_email: str,
             private_key: rsa.RSAPrivateKey, key_id: str, origins: list[str], now: datetime) -> str:
    """The signed "save to Google Wallet" JWT (RS256 with the service account's key)."""
    claims = {"iss": issuer_email, "aud": "google", "typ": "savetowallet", "iat": int(now.timestamp()),
              "origins": origins, "payload": {"genericClasses": classes, "genericObjects": objects}}
    return jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": key_id})


def save_url(token: str) -> str:
    """The link that opens Google Wallet's "save" page for a save JWT."""
    return SAVE_URL + token
