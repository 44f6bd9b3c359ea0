"""Wallet passes: the setup (certificates and keys), a member's pass, and Apple's PassKit web service.

A member gets one :class:`~cardsvc.db.models.WalletPass` the first time she adds her card to a wallet from her card
page (``/m/<link>``, the link being the bearer secret that authorises it). The pass always shows her card as it is
now (:func:`cardsvc.services.member_links.shown_card`): the current card's digits-only QR text, name, member number,
chapter and validity, voided once no door would accept it. Changes reach the phones through the outbox
(:mod:`cardsvc.services.wallet_outbox`, :mod:`cardsvc.services.wallet_updates`).

Devices authenticate to the web service with the pass's token: an HMAC of the random serial under a key derived
from the service secret, so every download of the pass carries the same token while the database keeps only its
SHA-256 (a stolen database gives no token, and no token is guessable without the secret).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import WalletPass, WalletRegistration
from cardsvc.errors import AuthenticationFailed, Conflict, NotFound, ValidationFailed
from cardsvc.services import audit, data_subject, member_links
from cardsvc.services.context import Actor
from cardsvc.settings import Settings
from integrations.wallet import ApnsTokenAuth, ServiceAccount
from issuance.credential import credential_qr_text
from issuance.wallet import (
    PassIdentity,
    PassSigningIdentity,
    WalletCard,
    build_pkpass,
    certificate_days_left,
    generic_class,
    generic_object,
    pass_images,
    save_jwt,
    save_url,
)
from verification.format import VIETNAM_TZ

log = logging.getLogger("cardsvc.wallet")

# The subject marker of the development CA and pass certificate that `cardsvc demo` makes.
DEVELOPMENT_MARKER = "NOT APPLE'S – development only"
DEFAULT_LOGO = Path(__file__).resolve().parent.parent / "web" / "member" / "static" / "icon-512.png"
# The officer pages warn this many days before a certificate expires.
EXPIRY_WARNING_DAYS = 30
APPLE_SERVICE_PATH = "/wallet/apple"
LOGO_PATH = "/wallet/logo.png"
_DEVICE_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")
_PUSH_TOKEN_RE = re.compile(r"^[0-9A-Fa-f]{16,200}$")
_SERIAL_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_LOG_MESSAGES = 20
MAX_LOG_CHARS = 300
ADDABLE = ("active", "suspended")
UID = x509.ObjectIdentifier("0.9.2342.19200300.100.1.1")


@dataclass(frozen=True)
class AppleSetup:
    """What signing and updating Apple passes needs."""

    pass_type_id: str
    team_id: str
    signing: PassSigningIdentity = field(repr=False)
    apns_auth: ApnsTokenAuth | None = field(repr=False)
    development: bool


@dataclass(frozen=True)
class GoogleSetup:
    """What Google save links and object updates need."""

    issuer_id: str
    account: ServiceAccount = field(repr=False)
    class_suffix: str

    @property
    def class_id(self) -> str:
        return f"{self.issuer_id}.{self.class_suffix}"

    def object_id(self, serial: str) -> str:
        return f"{self.issuer_id}.{serial}"


@dataclass(frozen=True)
class WalletSetup:
    """The wallet configuration as loaded (once per process); ``problems`` say what is missing or wrong."""

    apple: AppleSetup | None
    google: GoogleSetup | None
    problems: tuple[str, ...]
    union_name: str
    base_url: str
    token_key: bytes = field(repr=False)
    logo_png: bytes = field(repr=False)
    images: dict[str, bytes] = field(repr=False)

    @property
    def web_service_url(self) -> str:
        return self.base_url + APPLE_SERVICE_PATH


@dataclass(frozen=True)
class CertificateExpiry:
    """When one of the wallet's certificates expires."""

    name: str
    subject: str
    not_after: datetime
    days_left: int


def _required(settings: Settings, names: Sequence[str], service: str) -> list[str]:
    return [f"{service}: CARDSVC_{name.upper()} is not set" for name in names if getattr(settings, name) is None]


def _load_apple(settings: Settings, problems: list[str]) -> AppleSetup | None:
    names = ("wallet_pass_type_id", "wallet_team_id", "wallet_certificate_file", "wallet_key_file",
             "wallet_wwdr_file")
    missing = _required(settings, names, "Apple Wallet")
    if missing:
        problems.extend(missing)
        return None
    assert settings.wallet_certificate_file and settings.wallet_key_file and settings.wallet_wwdr_file
    try:
        password = settings.wallet_key_password.encode() if settings.wallet_key_password else None
        signing = PassSigningIdentity.from_pem(settings.wallet_certificate_file.read_bytes(),
                                               settings.wallet_key_file.read_bytes(),
                                               settings.wallet_wwdr_file.read_bytes(), password)
    except (OSError, ValueError, TypeError) as exc:
        problems.append(f"Apple Wallet: the pass certificate, its key or the WWDR certificate cannot be used "
                        f"({type(exc).__name__}: {exc})")
        return None
    subject = signing.certificate.subject
    development = DEVELOPMENT_MARKER in subject.rfc4514_string()
    uid = [a.value for a in subject.get_attributes_for_oid(UID)]
    team = [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    if uid and uid[0] != settings.wallet_pass_type_id:
        problems.append(f"Apple Wallet: the certificate is for {uid[0]!s}, not CARDSVC_WALLET_PASS_TYPE_ID "
                        f"{settings.wallet_pass_type_id}")
        return None
    if team and team[0] != settings.wallet_team_id:
        problems.append(f"Apple Wallet: the certificate belongs to team {team[0]!s}, not CARDSVC_WALLET_TEAM_ID "
                        f"{settings.wallet_team_id}")
        return None
    if development and settings.environment == "production":
        problems.append("Apple Wallet: the pass certificate is the development one made by `cardsvc demo` "
                        "(NOT APPLE'S); production needs the certificate Apple issued")
        return None
    apns_auth = None
    if settings.wallet_apns_key_file is not None and settings.wallet_apns_key_id:
        try:
            key = serialization.load_pem_private_key(settings.wallet_apns_key_file.read_bytes(), None)
        except (OSError, ValueError, TypeError) as exc:
            problems.append(f"Apple Wallet: the APNs key cannot be read ({type(exc).__name__})")
            key = None
        if isinstance(key, ec.EllipticCurvePrivateKey):
            apns_auth = ApnsTokenAuth(settings.wallet_apns_key_id, settings.wallet_team_id or "", key)
        elif key is not None:
            problems.append("Apple Wallet: the APNs key is not an EC (P-256) key")
    else:
        problems.append("Apple Wallet: no APNs key (CARDSVC_WALLET_APNS_KEY_FILE, CARDSVC_WALLET_APNS_KEY_ID): "
                        "pushes use the pass certificate as TLS client certificate")
    if settings.environment == "production" and not (settings.public_base_url or "").startswith("https://"):
        problems.append("Apple Wallet: CARDSVC_PUBLIC_BASE_URL must be https:// for devices to ask for updates")
    return AppleSetup(str(settings.wallet_pass_type_id), str(settings.wallet_team_id), signing, apns_auth,
                      development)


def _load_google(settings: Settings, problems: list[str]) -> GoogleSetup | None:
    missing = _required(settings, ("wallet_google_issuer_id", "wallet_google_key_file"), "Google Wallet")
    if missing:
        problems.extend(missing)
        return None
    assert settings.wallet_google_key_file is not None
    try:
        account = ServiceAccount.from_json(settings.wallet_google_key_file.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        problems.append(f"Google Wallet: the service-account key cannot be used ({type(exc).__name__}: {exc})")
        return None
    if account.development and settings.environment == "production":
        problems.append("Google Wallet: the service-account key is the development one made by `cardsvc demo`; "
                        "production needs the union's key from Google Cloud")
        return None
    return GoogleSetup(str(settings.wallet_google_issuer_id), account, settings.wallet_google_class_suffix)


# What passes name as their address when no public address is configured (development only).
DEVELOPMENT_BASE_URL = "http://127.0.0.1:8000"


def load_setup(settings: Settings) -> WalletSetup:
    """Read the wallet's certificates and keys; what cannot be used is left out and named in ``problems``."""
    problems: list[str] = []
    apple = _load_apple(settings, problems)
    google = _load_google(settings, problems)
    logo_file = settings.wallet_logo_file or DEFAULT_LOGO
    try:
        logo = logo_file.read_bytes()
        images = pass_images(logo)
    except (OSError, ValueError) as exc:
        problems.append(f"the wallet logo {logo_file} cannot be read as a PNG ({type(exc).__name__})")
        logo, images, apple, google = b"", {}, None, None
    base_url = (settings.public_base_url or "").rstrip("/")
    if not base_url:
        # A pass names the address devices and Google fetch it from: it cannot depend on who asked.
        problems.append("CARDSVC_PUBLIC_BASE_URL is not set: wallet passes need the service's public address"
                        + ("" if settings.environment == "production" else f" (development: {DEVELOPMENT_BASE_URL})"))
        if settings.environment == "production":
            apple, google = None, None
        base_url = DEVELOPMENT_BASE_URL
    return WalletSetup(apple, google, tuple(problems), settings.union_name, base_url,
                       settings.derived_key("wallet-pass-token"), logo, images)


def certificate_expiry(setup: WalletSetup, now: datetime) -> list[CertificateExpiry]:
    """The pass certificate and the WWDR intermediate with their days left (empty without Apple Wallet)."""
    if setup.apple is None:
        return []
    signing = setup.apple.signing
    return [CertificateExpiry(name, cert.subject.rfc4514_string(), cert.not_valid_after_utc,
                              certificate_days_left(cert, now))
            for name, cert in (("pass", signing.certificate), ("wwdr", signing.intermediate))]


def expiry_warning(setup: WalletSetup, now: datetime) -> CertificateExpiry | None:
    """The certificate that expires first, when it does so within :data:`EXPIRY_WARNING_DAYS`."""
    soonest = min(certificate_expiry(setup, now), key=lambda c: c.days_left, default=None)
    return soonest if soonest is not None and soonest.days_left <= EXPIRY_WARNING_DAYS else None


def readiness(setup: WalletSetup, now: datetime) -> dict[str, object]:
    """The wallet's part of ``/readyz``: which services are on, their certificates' days left, and problems."""
    return {"apple": setup.apple is not None, "google": setup.google is not None,
            "certificate_days_left": {c.name: c.days_left for c in certificate_expiry(setup, now)},
            "problems": list(setup.problems)}


def pass_token(setup: WalletSetup, serial: str) -> str:
    """The pass's authentication token (derived, never stored; see the module docstring)."""
    digest = hmac.new(setup.token_key, serial.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _member_pass(session: Session, setup: WalletSetup, member_id: int) -> WalletPass:
    """The member's pass, created on first use (two first downloads at once both get the same row)."""
    serial = secrets.token_hex(16)
    insert = postgresql_insert if session.connection().dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    session.execute(insert(WalletPass).values(
        member_id=member_id, serial=serial, auth_token_hash=_token_hash(pass_token(setup, serial)), update_tag=0,
        modified_at=now, created_at=now).on_conflict_do_nothing(index_elements=["member_id"]))
    return session.scalars(select(WalletPass).where(WalletPass.member_id == member_id)).one()


def wallet_card(session: Session, setup: WalletSetup, wallet_pass: WalletPass, today: date) -> WalletCard:
    """The pass's content now: what the member's printed card shows, and its state."""
    member = wallet_pass.member
    card, state = member_links.shown_card(session, member.id, today)
    showable = card is not None and state in ADDABLE and card.credential != b""
    return WalletCard(
        serial=wallet_pass.serial, union_name=setup.union_name, full_name=member.full_name,
        member_number=member.member_number, chapter_name=member.chapter.name,
        issued_on=card.issued_on if card else None, expires_on=card.expires_on if card else None,
        qr_text=credential_qr_text(card.credential) if card is not None and showable else None, state=state,
    )


def _today(today: date | None) -> date:
    return today or datetime.now(VIETNAM_TZ).date()


def _pkpass(setup: WalletSetup, apple: AppleSetup, card: WalletCard) -> bytes:
    identity = PassIdentity(apple.pass_type_id, apple.team_id, setup.union_name, setup.web_service_url,
                            pass_token(setup, card.serial))
    return build_pkpass(card, identity, setup.images, apple.signing)


@dataclass(frozen=True)
class PassFile:
    """A signed ``.pkpass`` and its ``Last-Modified``."""

    content: bytes
    modified_at: datetime


def _addable_pass(session: Session, setup: WalletSetup, link_token: str, request_id: str | None, today: date,
                  channel: str) -> tuple[WalletPass, WalletCard]:
    link = member_links.resolve(session, link_token, request_id=request_id)
    wallet_pass = _member_pass(session, setup, link.member_id)
    card = wallet_card(session, setup, wallet_pass, today)
    if card.state not in ADDABLE:
        session.rollback()
        raise Conflict("there is no valid card to add to a wallet", code="no_card_to_add")
    issued_column = f"{channel}_issued_at"
    if getattr(wallet_pass, issued_column) is None:
        setattr(wallet_pass, issued_column, utcnow())
        actor = Actor("system", None, "member-link", "viewer", None, request_id=request_id)
        audit.record(session, actor, f"wallet.{channel}_pass", target_type="wallet_pass", target_id=wallet_pass.id,
                     chapter_path=link.member.chapter.path, details={"member_id": link.member_id})
    session.commit()
    return wallet_pass, card


def apple_pass_for_link(session: Session, setup: WalletSetup, link_token: str, *, request_id: str | None = None,
                        today: date | None = None) -> PassFile:
    """The member's ``.pkpass`` for her card link.

    Raises:
        NotFound: The link is unknown or revoked, or Apple Wallet is not configured.
        Conflict: ``no_card_to_add``: she has no active or suspended card.
    """
    if setup.apple is None:
        raise NotFound("Apple Wallet passes are not offered", code="wallet_not_configured")
    wallet_pass, card = _addable_pass(session, setup, link_token, request_id, _today(today), "apple")
    return PassFile(_pkpass(setup, setup.apple, card), wallet_pass.modified_at)


def google_save_link(session: Session, setup: WalletSetup, link_token: str, *, request_id: str | None = None,
                     today: date | None = None, now: datetime | None = None) -> str:
    """The "save to Google Wallet" link for the member's card link (a fresh signed JWT each time).

    Raises:
        NotFound: The link is unknown or revoked, or Google Wallet is not configured.
        Conflict: ``no_card_to_add``.
    """
    google = setup.google
    if google is None:
        raise NotFound("Google Wallet passes are not offered", code="wallet_not_configured")
    _wallet_pass, card = _addable_pass(session, setup, link_token, request_id, _today(today), "google")
    body = google_object(setup, google, card)
    origin = urlsplit(setup.base_url)
    token = save_jwt(objects=[body], classes=[generic_class(google.class_id)],
                     issuer_email=google.account.client_email, private_key=google.account.private_key,
                     key_id=google.account.private_key_id, origins=[f"{origin.scheme}://{origin.netloc}"],
                     now=now or utcnow())
    return save_url(token)


def google_object(setup: WalletSetup, google: GoogleSetup, card: WalletCard) -> dict[str, object]:
    """The member's Google Wallet object as it should be now."""
    return generic_object(card, object_id=google.object_id(card.serial), class_id=google.class_id,
                          union_name=setup.union_name, logo_url=setup.base_url + LOGO_PATH)


# The PassKit web service (Apple calls it under webServiceURL) ------------------------------------------------------


def _apple(setup: WalletSetup, pass_type_id: str) -> AppleSetup:
    if setup.apple is None or not hmac.compare_digest(pass_type_id.encode(), setup.apple.pass_type_id.encode()):
        raise NotFound("unknown pass type", code="unknown_pass_type")
    return setup.apple


def authenticate_pass(session: Session, setup: WalletSetup, pass_type_id: str, serial: str,
                      authorization: str | None) -> WalletPass:
    """The pass a request is about, when it bears the pass's own token (``Authorization: ApplePass <token>``).

    Raises:
        AuthenticationFailed: A wrong, missing or malformed token, or an unknown serial (all alike).
        NotFound: Not our pass type.
    """
    _apple(setup, pass_type_id)
    scheme, _, token = (authorization or "").partition(" ")
    wallet_pass = (session.scalars(select(WalletPass).where(WalletPass.serial == serial)).one_or_none()
                   if _SERIAL_RE.fullmatch(serial) else None)
    supplied = _token_hash(token.strip()[:100])
    expected = wallet_pass.auth_token_hash if wallet_pass is not None else _token_hash(secrets.token_hex(16))
    if scheme != "ApplePass" or not hmac.compare_digest(supplied, expected) or wallet_pass is None:
        raise AuthenticationFailed("this pass's token is not valid", code="invalid_pass_token")
    return wallet_pass


def register_device(session: Session, setup: WalletSetup, *, device_id: str, pass_type_id: str, serial: str,
                    authorization: str | None, push_token: object) -> bool:
    """Register a device for a pass's updates (or renew its push token). Returns True when it is new."""
    wallet_pass = authenticate_pass(session, setup, pass_type_id, serial, authorization)
    if not _DEVICE_RE.fullmatch(device_id):
        raise ValidationFailed("invalid device identifier", details=[{"field": "device", "code": "invalid"}])
    if not isinstance(push_token, str) or not _PUSH_TOKEN_RE.fullmatch(push_token):
        raise ValidationFailed("pushToken must be a hex device token",
                               details=[{"field": "pushToken", "code": "invalid"}])
    if data_subject.is_erased(wallet_pass.member):
        # Her pass is voided and her devices are being forgotten: a device is not registered again.
        session.rollback()
        return False
    registration = session.scalars(select(WalletRegistration).where(
        WalletRegistration.device_id == device_id, WalletRegistration.pass_id == wallet_pass.id)).one_or_none()
    if registration is not None:
        registration.push_token = push_token
        session.commit()
        return False
    session.add(WalletRegistration(pass_id=wallet_pass.id, device_id=device_id, push_token=push_token))
    session.commit()
    log.info("wallet device registered", extra={"pass_id": wallet_pass.id})
    return True


def unregister_device(session: Session, setup: WalletSetup, *, device_id: str, pass_type_id: str, serial: str,
                      authorization: str | None) -> None:
    """Forget a device's registration for a pass (the pass was removed from the device). Idempotent."""
    wallet_pass = authenticate_pass(session, setup, pass_type_id, serial, authorization)
    session.execute(delete(WalletRegistration).where(WalletRegistration.device_id == device_id[:64],
                                                     WalletRegistration.pass_id == wallet_pass.id))
    session.commit()


def updated_serials(session: Session, setup: WalletSetup, *, device_id: str, pass_type_id: str,
                    since: str | None) -> tuple[list[str], str] | None:
    """The serials of the device's passes updated after the tag ``since`` and the new tag; None when none were."""
    _apple(setup, pass_type_id)
    after = int(since) if since is not None and since.isdigit() and len(since) <= 18 else -1
    rows = session.execute(
        select(WalletPass.serial, WalletPass.update_tag).join(WalletRegistration,
                                                              WalletRegistration.pass_id == WalletPass.id)
        .where(WalletRegistration.device_id == device_id[:64], WalletPass.update_tag > after)
        .order_by(WalletPass.update_tag)
    ).all()
    if not rows:
        return None
    return [serial for serial, _tag in rows], str(max(tag for _serial, tag in rows))


def latest_pass(session: Session, setup: WalletSetup, *, pass_type_id: str, serial: str,
                authorization: str | None, if_modified_since: str | None, today: date | None = None
                ) -> PassFile | None:
    """The pass as it is now, or None when it has not changed since ``If-Modified-Since``."""
    apple = _apple(setup, pass_type_id)
    wallet_pass = authenticate_pass(session, setup, pass_type_id, serial, authorization)
    modified = wallet_pass.modified_at.replace(microsecond=0)
    if if_modified_since:
        try:
            seen = email.utils.parsedate_to_datetime(if_modified_since[:64])
        except (TypeError, ValueError):
            seen = None
        if seen is not None and seen.tzinfo is not None and modified <= seen:
            return None
    card = wallet_card(session, setup, wallet_pass, _today(today))
    return PassFile(_pkpass(setup, apple, card), modified)


def record_device_log(messages: object) -> int:
    """Log what Wallet reports about failures talking to us (capped: at most 20 lines of 300 characters)."""
    if not isinstance(messages, list):
        return 0
    lines = [message[:MAX_LOG_CHARS] for message in messages[:MAX_LOG_MESSAGES] if isinstance(message, str)]
    for line in lines:
        log.warning("wallet device log: %s", line)
    return len(lines)

