"""Development wallet credentials for the demo: a self-made CA and pass certificate, an APNs key and a Google
service-account key, all clearly marked as not Apple's (or Google's) and refused in production.

With them ``make run`` shows the wallet buttons, serves a signed ``.pkpass`` and a Google save link on the demo data.
Apple Wallet does not install a pass signed by this CA, Google does not know this key, and the outbox never sends
anything with them (``cardsvc.services.wallet_updates``).
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from cardsvc.services.wallet import DEVELOPMENT_MARKER, UID
from cardsvc.settings import DEV_WALLET_DEFAULTS

CERTIFICATE_DAYS = 365


def _name(common_name: str, organization: str, extra: list[x509.NameAttribute[str]] | None = None) -> x509.Name:
    return x509.Name([*(extra or []), x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])


def make_ca(common_name: str, organization: str, now: datetime) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed CA certificate and its key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name(common_name, organization)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=CERTIFICATE_DAYS * 5))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def make_pass_certificate(ca: x509.Certificate, ca_key: rsa.RSAPrivateKey, *, pass_type_id: str, team_id: str,
                          organization: str, now: datetime, days: int = CERTIFICATE_DAYS
                          ) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A Pass Type ID certificate shaped like Apple's (UID = pass type id, OU = team id), issued by ``ca``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = _name(f"Pass Type ID: {pass_type_id}", organization, [
        x509.NameAttribute(UID, pass_type_id), x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, team_id)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def service_account_json(client_email: str, token_uri: str, *, development: bool) -> bytes:
    """A Google service-account key file with a new RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    body: dict[str, object] = {"type": "service_account", "project_id": "cardsvc-development",
                               "private_key_id": secrets.token_hex(20), "private_key": pem,
                               "client_email": client_email, "token_uri": token_uri}
    if development:
        body["cardsvc_development"] = True
    return json.dumps(body, indent=1).encode()


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, *, secret: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def make_development_credentials(now: datetime | None = None) -> bool:
    """Write the development credentials where the development settings look for them (``var/wallet-dev/``),
    unless they are there already. Returns whether anything was written."""
    files = {name: Path(str(value)) for name, value in DEV_WALLET_DEFAULTS.items() if name.endswith("_file")}
    if all(path.is_file() for path in files.values()):
        return False
    moment = now or datetime.now(UTC)
    ca, ca_key = make_ca("cardsvc development CA", DEVELOPMENT_MARKER, moment)
    cert, key = make_pass_certificate(ca, ca_key, pass_type_id=str(DEV_WALLET_DEFAULTS["wallet_pass_type_id"]),
                                      team_id=str(DEV_WALLET_DEFAULTS["wallet_team_id"]),
                                      organization=DEVELOPMENT_MARKER, now=moment)
    _write(files["wallet_wwdr_file"], _pem(ca), secret=False)
    _write(files["wallet_certificate_file"], _pem(cert), secret=False)
    _write(files["wallet_key_file"], _private_pem(key), secret=True)
    _write(files["wallet_apns_key_file"], _private_pem(ec.generate_private_key(ec.SECP256R1())), secret=True)
    _write(files["wallet_google_key_file"],
           service_account_json("cardsvc-development@development.invalid", "https://oauth2.googleapis.com/token",
                                development=True), secret=True)
    return True
