"""Provisioning a station: the set-up QR (``{server}/checkin#setup={code}``, or the bare code and the server) is
exchanged for a device token; the trust key is pinned and the first event bundle downloaded and verified with it.

The trust key is fetched over the same connection as the device token, right after the one-time code was accepted:
it is trusted on first use, so set stations up over HTTPS (or on the union's own network).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from station.client import StationClient
from station.errors import ServerError, ServerRefused, SetupError
from station.store import Provisioning, StationStore
from verification.errors import TrustError
from verification.event_bundle import EventBundle, verify_event_bundle
from verification.trust import TrustAnchor


def parse_setup_text(text: str, server: str | None) -> tuple[str, str]:
    """Read what the set-up QR holds.

    Args:
        text: ``https://server/checkin#setup=CODE`` (the QR's text), or the bare ``CODE``.
        server: The server's base URL; needed with a bare code, and overrides the URL's own base otherwise (a
            station reaching the server by another address than the public one).

    Returns:
        (server base URL without a trailing slash, code).

    Raises:
        SetupError: Neither a set-up URL nor a code, or a bare code without ``server``.
    """
    text = text.strip()
    if "://" in text:
        parts = urlsplit(text)
        codes = parse_qs(parts.fragment).get("setup") or parse_qs(parts.query).get("setup")
        if not codes or not parts.netloc or parts.scheme not in ("http", "https"):
            raise SetupError("this is not a station set-up link (expected …/checkin#setup=CODE)")
        path = parts.path.rstrip("/")
        base = f"{parts.scheme}://{parts.netloc}{path.removesuffix('/checkin')}"
        return (server or base).rstrip("/"), codes[0].strip()
    if not text or any(c.isspace() for c in text):
        raise SetupError("the set-up code is empty or contains spaces")
    if not server:
        raise SetupError("a bare set-up code needs --server https://the.server")
    return server.rstrip("/"), text


@dataclass(frozen=True)
class SetupReport:
    """What ``--setup`` did."""

    server: str
    station_id: int
    event_id: int
    anchor_kid: str
    bundle: EventBundle | None
    bundle_problem: str | None


def provision_station(store: StationStore, client: StationClient, code: str, now: datetime) -> SetupReport:
    """Exchange the code, pin the trust key, store both, then fetch the first event bundle.

    Args:
        store: The station database.
        client: A client for the server (without a token yet).
        code: The one-time set-up code.
        now: The station clock.

    Returns:
        The report; ``bundle`` is None (with ``bundle_problem``) when the bundle could not be fetched yet — the
        station is set up all the same and fetches it when it runs.

    Raises:
        SetupError: The code was refused, the server was unreachable, or the trust key is not usable.
    """
    try:
        result = client.provision(code)
        client.token = result.device_token
        jwk = client.trust_anchor()
    except ServerRefused as exc:
        raise SetupError(f"the server refused the set-up code ({exc.code}): {exc}") from exc
    except ServerError as exc:
        raise SetupError(str(exc)) from exc
    try:
        anchor = TrustAnchor.from_jwk(jwk)
    except (KeyError, TypeError, ValueError) as exc:
        raise SetupError(f"the server's trust key is not usable: {exc}") from exc
    store.save_provisioning(Provisioning(client.server, result.device_token, result.event_id, result.station_id,
                                         jwk))
    bundle: EventBundle | None = None
    problem: str | None = None
    try:
        token = client.event_bundle(result.event_id)
        bundle = verify_event_bundle(token, anchor, now)
        store.save_bundle(token, now)
    except (ServerError, TrustError) as exc:
        problem = str(exc)
    return SetupReport(client.server, result.station_id, result.event_id, anchor.kid.hex(), bundle, problem)
