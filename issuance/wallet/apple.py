"""Apple Wallet passes: ``pass.json``, localised texts, images, ``manifest.json`` and its detached PKCS#7 signature.

A ``.pkpass`` is a zip of ``pass.json``, the images and ``vi.lproj/pass.strings`` / ``en.lproj/pass.strings``,
``manifest.json`` (the SHA-1 hex digest of every other file) and ``signature``: a detached PKCS#7 (DER) over
``manifest.json``, signed with the Pass Type ID certificate's key and carrying Apple's WWDR intermediate
certificate. The barcode is the card's digits-only QR text, so a door verifies the pass offline like the printed
card. Labels are keys that the ``.strings`` files translate, Vietnamese first.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from PIL import Image

from issuance.wallet.content import LANGUAGES, TEXTS, WalletCard, day_text

# Store-card images in points; @2x and @3x files hold two and three times the pixels.
ICON_POINTS = 29
LOGO_HEIGHT_POINTS = 50
SCALES = ((1, ""), (2, "@2x"), (3, "@3x"))
# The union's colours (the member page's theme colour).
BACKGROUND = "rgb(163, 21, 79)"
FOREGROUND = "rgb(255, 255, 255)"
LABEL = "rgb(255, 222, 235)"
# A fixed time for every zip entry: the archive then depends on its content only.
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)

PassSigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class PassIdentity:
    """Who issues the pass and where it asks for updates.

    Attributes:
        pass_type_id: ``pass.<reverse domain>``, as registered with Apple (the certificate's UID).
        team_id: The Apple team (the certificate's OU).
        organization_name: Shown by Wallet (the union's name).
        web_service_url: The base URL of the PassKit web service (``https://…/wallet/apple``).
        authentication_token: The pass's own token (at least 16 characters) the device presents to that service.
    """

    pass_type_id: str
    team_id: str
    organization_name: str
    web_service_url: str
    authentication_token: str


@dataclass(frozen=True, slots=True)
class PassSigningIdentity:
    """The Pass Type ID certificate with its private key, and Apple's WWDR intermediate that issued it."""

    certificate: x509.Certificate
    private_key: PassSigningKey
    intermediate: x509.Certificate

    @classmethod
    def from_pem(cls, certificate: bytes, private_key: bytes, intermediate: bytes,
                 password: bytes | None = None) -> PassSigningIdentity:
        """Load PEM files (the intermediate may also be DER, as Apple publishes it).

        Raises:
            ValueError: A file is not what it should be, or the key does not belong to the certificate.
        """
        cert = x509.load_pem_x509_certificate(certificate)
        key = serialization.load_pem_private_key(private_key, password)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("the pass certificate's key must be an RSA or EC key")
        if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
                != cert.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo):
            raise ValueError("the private key does not belong to the pass certificate")
        wwdr = (x509.load_pem_x509_certificate(intermediate) if intermediate.lstrip().startswith(b"-----")
                else x509.load_der_x509_certificate(intermediate))
        return cls(cert, key, wwdr)


def certificate_days_left(certificate: x509.Certificate, now: datetime) -> int:
    """Whole days until the certificate expires (negative once it has)."""
    return (certificate.not_valid_after_utc - now).days


def _expiration(day: date) -> str:
    # The card is valid through its last day in Vietnam (UTC+7, no daylight saving time).
    return f"{day.isoformat()}T23:59:59+07:00"


def pass_json(card: WalletCard, identity: PassIdentity) -> dict[str, Any]:
    """The pass's ``pass.json``: a store card with the printed card's facts; labels are ``.strings`` keys."""
    auxiliary: list[dict[str, str]] = []
    if card.expires_on is not None:
        auxiliary.append({"key": "valid_until", "label": "valid_until", "value": day_text(card.expires_on)})
    auxiliary.append({"key": "status", "label": "status", "value": f"status_{card.state}",
                      "changeMessage": "%@"})
    back = [{"key": "about", "label": "about", "value": "about_text"}]
    if card.issued_on is not None:
        back.insert(0, {"key": "issued_on", "label": "issued_on", "value": day_text(card.issued_on)})
    body: dict[str, Any] = {
        "formatVersion": 1,
        "passTypeIdentifier": identity.pass_type_id,
        "serialNumber": card.serial,
        "teamIdentifier": identity.team_id,
        "organizationName": identity.organization_name,
        "description": "description",
        "logoText": card.union_name,
        "backgroundColor": BACKGROUND,
        "foregroundColor": FOREGROUND,
        "labelColor": LABEL,
        "sharingProhibited": True,
        "webServiceURL": identity.web_service_url,
        "authenticationToken": identity.authentication_token,
        "storeCard": {
            "primaryFields": [{"key": "name", "label": "name", "value": card.full_name}],
            "secondaryFields": [
                {"key": "member_number", "label": "member_number", "value": card.member_number},
                {"key": "chapter", "label": "chapter", "value": card.chapter_name},
            ],
            "auxiliaryFields": auxiliary,
            "backFields": back,
        },
    }
    if card.qr_text is not None and not card.void:
        body["barcodes"] = [{"format": "PKBarcodeFormatQR", "message": card.qr_text,
                             "messageEncoding": "iso-8859-1", "altText": card.member_number}]
    if card.expires_on is not None:
        body["expirationDate"] = _expiration(card.expires_on)
    if card.void:
        body["voided"] = True
    return body


def _strings_file(language: str) -> bytes:
    index = LANGUAGES.index(language)

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    return "".join(f"{quoted(key)} = {quoted(texts[index])};\n" for key, texts in TEXTS.items()).encode()


def pass_images(source_png: bytes) -> dict[str, bytes]:
    """Icon and logo files at 1x, 2x and 3x from one square PNG (the union's logo)."""
    with Image.open(io.BytesIO(source_png)) as opened:
        image = opened.convert("RGBA")
    files = {}
    for scale, suffix in SCALES:
        for name, points in (("icon", ICON_POINTS), ("logo", LOGO_HEIGHT_POINTS)):
            resized = image.resize((points * scale, points * scale), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            resized.save(out, format="PNG", optimize=True)
            files[f"{name}{suffix}.png"] = out.getvalue()
    return files


def manifest(files: Mapping[str, bytes]) -> bytes:
    """``manifest.json``: the SHA-1 hex digest of every file of the pass (Apple's format, not our choice)."""
    digests = {name: hashlib.sha1(data, usedforsecurity=False).hexdigest() for name, data in sorted(files.items())}
    return json.dumps(digests, indent=1).encode()


def sign_manifest(manifest_bytes: bytes, signing: PassSigningIdentity) -> bytes:
    """A detached PKCS#7 signature (DER) over ``manifest.json`` that carries the WWDR intermediate."""
    return (pkcs7.PKCS7SignatureBuilder().set_data(manifest_bytes)
            .add_signer(signing.certificate, signing.private_key, hashes.SHA256())
            .add_certificate(signing.intermediate)
            .sign(serialization.Encoding.DER,
                  [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]))


def build_pkpass(card: WalletCard, identity: PassIdentity, images: Mapping[str, bytes],
                 signing: PassSigningIdentity) -> bytes:
    """The signed ``.pkpass`` archive of a card.

    Args:
        images: File name → PNG bytes, as :func:`pass_images` makes them.
    """
    files: dict[str, bytes] = {
        "pass.json": json.dumps(pass_json(card, identity), ensure_ascii=False, indent=1).encode(),
        **{f"{language}.lproj/pass.strings": _strings_file(language) for language in LANGUAGES},
        **images,
    }
    manifest_bytes = manifest(files)
    files["manifest.json"] = manifest_bytes
    files["signature"] = sign_manifest(manifest_bytes, signing)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_TIME), data, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()
