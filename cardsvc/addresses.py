"""The address members' card links and stations' set-up QRs are built from, and what makes one unusable on a phone.

With ``CARDSVC_PUBLIC_BASE_URL`` set, that is the address. Unset, it is the address the request came to — the one in
the officer's address bar — so an officer who opens ``/admin`` at ``http://192.168.1.20:8000`` on a venue's network
shows phones a QR with that address, not the server's idea of itself. ``X-Forwarded-Proto`` and
``X-Forwarded-Host`` are believed only from a proxy listed in ``CARDSVC_TRUSTED_PROXIES``; anyone else could
otherwise put their own host into the links a member receives.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Literal
from urllib.parse import urlsplit

from starlette.requests import Request

# A host name or an IPv4 address, or a bracketed IPv6 address, with an optional port: nothing that could carry a
# path, credentials or a second host into a link.
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?|\[[0-9A-Fa-f:.]+\])"
                   r"(?::\d{1,5})?$")

AddressProblem = Literal["loopback", "plain_http_named_host", "plain_http"]


def _first(value: str | None) -> str:
    return (value or "").split(",", 1)[0].strip()


def _trusted(peer: str | None, proxies: Sequence[IPv4Network | IPv6Network]) -> bool:
    if not peer or not proxies:
        return False
    try:
        address = ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in proxies)


def request_base_url(request: Request, trusted_proxies: Sequence[IPv4Network | IPv6Network]) -> str:
    """``scheme://host[:port]`` of the address the client used.

    The ``Host`` header and the connection's scheme (which uvicorn already takes from ``X-Forwarded-Proto`` of a
    proxy on 127.0.0.1); ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` only when the peer is a trusted proxy. A
    missing or malformed host falls back to the address the server listens on.
    """
    scheme = request.url.scheme if request.url.scheme in ("http", "https") else "http"
    host = request.headers.get("host", "")
    if _trusted(request.client.host if request.client else None, trusted_proxies):
        forwarded_scheme = _first(request.headers.get("x-forwarded-proto")).lower()
        forwarded_host = _first(request.headers.get("x-forwarded-host"))
        if forwarded_scheme in ("http", "https"):
            scheme = forwarded_scheme
        if forwarded_host and _HOST.fullmatch(forwarded_host):
            host = forwarded_host
    if not _HOST.fullmatch(host):
        server = request.scope.get("server") or ("127.0.0.1", 80)
        name = f"[{server[0]}]" if ":" in str(server[0]) else str(server[0])
        host = f"{name}:{server[1]}" if server[1] else name
    return f"{scheme}://{host}"


def public_base_url(request: Request) -> str:
    """The address links and set-up QRs start with: the configured public address, or the request's."""
    settings = request.app.state.settings
    configured: str | None = settings.public_base_url
    return configured or request_base_url(request, settings.trusted_proxy_networks)


def address_problems(base_url: str) -> list[AddressProblem]:
    """Why a phone could not use ``base_url`` (or only without its camera).

    ``loopback``: the address is the server's own machine (127.0.0.1, localhost); a phone cannot reach it.
    ``plain_http_named_host``: plain HTTP to a name, which a real deployment serves over HTTPS; phones open it but
    keep the camera off and anyone on the way can read or change the page. ``plain_http``: plain HTTP to an address
    on the local network (e.g. a laptop at a venue): it opens, but the camera needs ``cardsvc serve --tls``.
    """
    parts = urlsplit(base_url)
    host = (parts.hostname or "").rstrip(".").lower()
    try:
        literal = ip_address(host)
    except ValueError:
        literal = None
    if host == "localhost" or host.endswith(".localhost") or (literal is not None and literal.is_loopback):
        return ["loopback"]
    if parts.scheme == "http":
        return ["plain_http" if literal is not None else "plain_http_named_host"]
    return []
