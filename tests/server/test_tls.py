"""``cardsvc serve --tls``: the local certificate authority, the LAN certificate it signs, and a real HTTPS server that
a client trusting only that authority talks to (cardsvc/tls.py)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address, ip_network
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from cardsvc import tls
from tests.conftest import TEST_KEK, TEST_SECRET
from tests.web.harness import free_port


def _certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _names(certificate: x509.Certificate) -> list[object]:
    return list(certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)


def test_the_authority_is_constrained_to_local_networks_and_names(tmp_path: Path) -> None:
    files = tls.prepare(tmp_path, ["192.168.1.20", "laptop.local"])
    authority = _certificate(files.ca_certificate)
    assert authority.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    constraints = authority.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    permitted = constraints.value.permitted_subtrees or []
    networks = {name.value for name in permitted if isinstance(name, x509.IPAddress)}
    assert ip_network("192.168.0.0/16") in networks and ip_network("127.0.0.0/8") in networks
    assert not any(ip_address("8.8.8.8") in network for network in networks)
    assert {name.value for name in permitted if isinstance(name, x509.DNSName)} >= {"local", "localhost"}
    assert (tmp_path / tls.CA_KEY).stat().st_mode & 0o077 == 0
    assert (tmp_path / tls.SERVER_KEY).stat().st_mode & 0o077 == 0

    server = _certificate(files.certificate)
    server.verify_directly_issued_by(authority)
    assert x509.IPAddress(ip_address("192.168.1.20")) in _names(server)
    assert x509.IPAddress(ip_address("127.0.0.1")) in _names(server)
    assert x509.DNSName("laptop.local") in _names(server)
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    # iPhones refuse server certificates valid for more than 825 days.
    assert server.not_valid_after_utc - server.not_valid_before_utc < timedelta(days=400)


def test_the_certificate_is_kept_renewed_or_reissued_for_a_new_address_by_the_same_authority(tmp_path: Path) -> None:
    first = tls.prepare(tmp_path, ["192.168.1.20"])
    authority, certificate = first.ca_certificate.read_bytes(), first.certificate.read_bytes()
    assert tls.prepare(tmp_path, ["192.168.1.20"]).certificate.read_bytes() == certificate
    moved = tls.prepare(tmp_path, ["10.0.0.7"])  # the next venue's network
    assert moved.certificate.read_bytes() != certificate
    assert moved.ca_certificate.read_bytes() == authority  # phones keep trusting it
    assert x509.IPAddress(ip_address("10.0.0.7")) in _names(_certificate(moved.certificate))
    later = datetime.now(UTC) + timedelta(days=380)
    renewed = tls.prepare(tmp_path, ["10.0.0.7"], now=later)
    assert _certificate(renewed.certificate).not_valid_after_utc > later + timedelta(days=300)


def test_public_addresses_and_names_are_refused(tmp_path: Path) -> None:
    for host in ("8.8.8.8", "cards.example.vn"):
        with pytest.raises(tls.TlsSetupError, match="real certificate"):
            tls.prepare(tmp_path, [host])


def test_a_certificate_for_a_public_name_from_a_stolen_authority_key_is_refused(tmp_path: Path) -> None:
    """The name constraints at work: OpenSSL (as phones do) refuses what the authority may not certify."""
    files = tls.prepare(tmp_path, ["127.0.0.1"])
    authority = _certificate(files.ca_certificate)
    key = serialization.load_pem_private_key((tmp_path / tls.CA_KEY).read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    # A certificate made exactly as the server's, for a public name.
    forged_dir = tmp_path / "forged"
    forged_dir.mkdir()
    tls._issue_server_certificate(forged_dir, authority, key, [x509.DNSName("bank.example")], datetime.now(UTC))
    forged = _certificate(forged_dir / tls.SERVER_CERTIFICATE)
    store = x509.verification.Store([authority])
    verifier = x509.verification.PolicyBuilder().store(store).build_server_verifier(x509.DNSName("bank.example"))
    with pytest.raises(x509.verification.VerificationError):
        verifier.verify(forged, [])
    honest = _certificate(files.certificate)
    local = x509.verification.PolicyBuilder().store(store).build_server_verifier(
        x509.IPAddress(ip_address("127.0.0.1")))
    local.verify(honest, [])


def test_cardsvc_serve_tls_answers_over_https_with_the_local_authority(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CARDSVC_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "CARDSVC_SECRET_KEY": TEST_SECRET, "CARDSVC_KEY_ENCRYPTION_KEY": TEST_KEK, "CARDSVC_ENVIRONMENT": "test",
           "CARDSVC_TLS_DIR": str(tmp_path / "tls")}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "cardsvc.cli", "serve", "--tls", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        authority = tmp_path / "tls" / tls.CA_CERTIFICATE
        answer = None
        deadline = time.monotonic() + 30
        while answer is None and time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if authority.is_file():
                    context = ssl.create_default_context(cafile=str(authority))
                    answer = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=context, timeout=2)
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert answer is not None and answer.status_code == 200, "the HTTPS server did not answer"
        help_page = httpx.get(f"https://127.0.0.1:{port}/admin/tls", verify=context, timeout=5)
        assert help_page.status_code == 200 and 'id="tls-download"' in help_page.text
        # Without the local authority a client refuses the server.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"https://127.0.0.1:{port}/healthz", timeout=2)
        assert "each phone installs it once" in (tmp_path / "serve.log").read_text()
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()
