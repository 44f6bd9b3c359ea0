"""HTTPS for a venue without internet: a local certificate authority and a certificate for the laptop's LAN address.

A phone's browser opens the camera only on a secure page (HTTPS, or the phone's own localhost), and no public
certificate authority certifies ``192.168.1.20``. ``cardsvc serve --tls`` therefore creates, once, a certificate
authority of its own (``ca.crt`` + ``ca.key`` in ``CARDSVC_TLS_DIR``), and from it a server certificate for the
machine's local addresses; each phone installs ``ca.crt`` once (``/admin/tls`` explains how, in Vietnamese). When the
laptop gets another address at the next venue, a new server certificate is made from the same authority, so phones
keep trusting it.

The authority is constrained (RFC 5280 name constraints, which Android and iOS enforce) to private and loopback
addresses and to local names (``.local``, ``.lan``, ``.home.arpa``, ``.internal``, ``localhost``): should its key
leak from the laptop, it still cannot vouch for a bank's or the union's public site on a phone that trusts it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERTIFICATE = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERTIFICATE = "server.crt"
SERVER_KEY = "server.key"
CA_LIFETIME = timedelta(days=3650)
# Apple refuses server certificates valid for more than 825 days, browsers' public rules say 398: stay under both.
SERVER_LIFETIME = timedelta(days=397)
RENEW_BEFORE = timedelta(days=30)
# Phones whose clock is a little behind still accept a certificate made a moment ago.
CLOCK_SLACK = timedelta(hours=1)
PERMITTED_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8",
    "fc00::/7", "fe80::/10", "::1/128",
))
PERMITTED_SUFFIXES = ("localhost", "local", "lan", "home.arpa", "internal")
SIOCGIFADDR = 0x8915  # linux/sockios.h


class TlsSetupError(RuntimeError):
    """The certificate cannot be made as asked (an address or name the local authority may not certify)."""


@dataclass(frozen=True)
class TlsFiles:
    """What uvicorn serves HTTPS with, and what phones install."""

    certificate: Path
    key: Path
    ca_certificate: Path
    hosts: tuple[str, ...]


def _interface_addresses() -> Iterator[str]:
    """IPv4 addresses of this machine's interfaces (Linux ioctl; elsewhere what the host name resolves to)."""
    if sys.platform.startswith("linux"):
        import fcntl

        for _index, name in socket.if_nameindex():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
                except OSError:  # no IPv4 address on this interface
                    continue
            yield socket.inet_ntoa(answer[20:24])
        return
    try:
        yield from socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        return


def lan_addresses() -> list[str]:
    """This machine's addresses that phones on a local network can reach and the local authority may certify."""
    found = []
    for text in _interface_addresses():
        address = ipaddress.ip_address(text)
        if not address.is_loopback and _permitted_address(address) and text not in found:
            found.append(text)
    return found


def _permitted_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(address in network for network in PERMITTED_NETWORKS)


def _permitted_name(name: str) -> bool:
    labels = name.lower().rstrip(".")
    return any(labels == suffix or labels.endswith("." + suffix) for suffix in PERMITTED_SUFFIXES)


def _general_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if not _permitted_name(host):
                raise TlsSetupError(
                    f"{host}: the local certificate authority certifies only local names "
                    f"({', '.join('.' + s for s in PERMITTED_SUFFIXES)}); a public name needs a real certificate"
                ) from None
            names.append(x509.DNSName(host.lower().rstrip(".")))
            continue
        if not _permitted_address(address):
            raise TlsSetupError(f"{host}: the local certificate authority certifies only private and loopback "
                                "addresses; a public address needs a real certificate")
        names.append(x509.IPAddress(address))
    return names


def _write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, replacing the old one in one step."""
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _create_authority(directory: Path, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cardsvc"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"cardsvc local CA ({socket.gethostname()[:40]}, {now:%Y-%m-%d})"),
    ])
    constraints = x509.NameConstraints(
        permitted_subtrees=[*(x509.IPAddress(network) for network in PERMITTED_NETWORKS),
                            *(x509.DNSName(suffix) for suffix in PERMITTED_SUFFIXES)],
        excluded_subtrees=None,
    )
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SLACK).not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(constraints, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(directory / CA_KEY, _key_pem(key))
    (directory / CA_CERTIFICATE).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate, key


def _load_authority(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    if not (directory / CA_CERTIFICATE).is_file() or not (directory / CA_KEY).is_file():
        return None
    certificate = x509.load_pem_x509_certificate((directory / CA_CERTIFICATE).read_bytes())
    key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsSetupError(f"{directory / CA_KEY} is not the local authority's key")
    return certificate, key


def _current_server_certificate(directory: Path, authority: x509.Certificate, names: list[x509.GeneralName],
                                now: datetime) -> bool:
    """Whether the stored server certificate is the authority's, valid for a while yet, and covers ``names``."""
    path = directory / SERVER_CERTIFICATE
    if not path.is_file() or not (directory / SERVER_KEY).is_file():
        return False
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    if certificate.issuer != authority.subject or certificate.not_valid_after_utc - RENEW_BEFORE < now:
        return False
    try:
        certificate.verify_directly_issued_by(authority)
    except (ValueError, TypeError, InvalidSignature):
        return False
    covered = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return all(name in covered for name in names)


def _issue_server_certificate(directory: Path, authority: x509.Certificate, authority_key: ec.EllipticCurvePrivateKey,
                              names: list[x509.GeneralName], now: datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    first = names[0].value
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(first))]))
        .issuer_name(authority.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SLACK).not_valid_after(now + SERVER_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key.public_key()),
                       critical=False)
        .sign(authority_key, hashes.SHA256())
    )
    _write_private(directory / SERVER_KEY, _key_pem(key))
    (directory / SERVER_CERTIFICATE).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def prepare(directory: Path, hosts: Sequence[str], *, now: datetime | None = None) -> TlsFiles:
    """The certificate to serve HTTPS for ``hosts`` (plus 127.0.0.1 and localhost), made when needed.

    Creates the local authority on first use; issues a new server certificate when there is none, when it expires
    within 30 days, or when it does not cover every host (a new address at another venue).

    Raises:
        TlsSetupError: A host the local authority may not certify (a public address or name).
    """
    now = now or datetime.now(UTC)
    wanted = list(dict.fromkeys([*hosts, "127.0.0.1", "localhost"]))
    names = _general_names(wanted)
    directory.mkdir(parents=True, exist_ok=True)
    authority = _load_authority(directory) or _create_authority(directory, now)
    if not _current_server_certificate(directory, authority[0], names, now):
        _issue_server_certificate(directory, authority[0], authority[1], names, now)
    return TlsFiles(directory / SERVER_CERTIFICATE, directory / SERVER_KEY, directory / CA_CERTIFICATE, tuple(wanted))


def authority_certificate(directory: Path) -> x509.Certificate | None:
    """The local authority's certificate (what phones install), or None when ``serve --tls`` never ran here."""
    path = directory / CA_CERTIFICATE
    if not path.is_file():
        return None
    return x509.load_pem_x509_certificate(path.read_bytes())


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 fingerprint as phones show it in their certificate details (``AB:CD:…``)."""
    return ":".join(f"{byte:02X}" for byte in certificate.fingerprint(hashes.SHA256()))
