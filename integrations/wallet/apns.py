"""Apple's push service (APNs) over HTTP/2, for pass updates: an empty ``{}`` to each registered device.

Authentication is token based: an ES256 JWT (header ``kid`` = the APNs key id, claims ``iss`` = the team id and
``iat``) signed with the ``.p8`` key, sent as ``authorization: bearer``. Apple refuses tokens older than an hour and
throttles providers that renew them more often than every 20 minutes, so one token is kept for 50 minutes (and
renewed early when Apple answers ``ExpiredProviderToken``). Without a key, the HTTP client may instead present
the Pass Type ID certificate as a TLS client certificate (Apple's older, certificate-based connection):
:func:`make_apns_http_client`. The topic is the pass type id.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from integrations.wallet.errors import WalletAuthFailure, WalletRejected, WalletUnavailable
from integrations.wallet.protocol import PushResult

__all__ = ["APNS_PRODUCTION", "ApnsClient", "ApnsTokenAuth", "make_apns_http_client"]

APNS_PRODUCTION = "https://api.push.apple.com"
TOKEN_LIFETIME_SECONDS = 50 * 60
# 400 reasons that mean the device token is not (or no longer) one of ours: forget the registration.
_GONE_REASONS = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered"})
_AUTH_REASONS = frozenset({"ExpiredProviderToken", "InvalidProviderToken", "MissingProviderToken"})


@dataclass
class ApnsTokenAuth:
    """Provider tokens for token-based APNs authentication, renewed every 50 minutes."""

    key_id: str
    team_id: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    clock: Callable[[], float] = time.time
    _token: tuple[float, str] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def header(self) -> str:
        """The ``authorization`` header value: ``bearer <JWT>``."""
        now = self.clock()
        with self._lock:
            if self._token is None or now - self._token[0] >= TOKEN_LIFETIME_SECONDS:
                token = jwt.encode({"iss": self.team_id, "iat": int(now)}, self.private_key, algorithm="ES256",
                                   headers={"kid": self.key_id})
                self._token = (now, token)
            return "bearer " + self._token[1]

    def renew(self) -> None:
        """Forget the current token (Apple said it expired)."""
        with self._lock:
            self._token = None


def make_apns_http_client(*, timeout: float = 10.0, ca_file: str | None = None,
                          client_cert_file: str | None = None, client_key_file: str | None = None,
                          client_key_password: str | None = None) -> httpx.Client:
    """An HTTP/2 client for APNs. ``ca_file`` replaces the system CAs (tests); a client certificate is presented
    when given (certificate-based authentication with the Pass Type ID certificate)."""
    context = ssl.create_default_context(cafile=ca_file)
    if client_cert_file:
        context.load_cert_chain(client_cert_file, client_key_file, client_key_password)
    return httpx.Client(http2=True, verify=context, timeout=timeout)


class ApnsClient:
    """A :class:`~integrations.wallet.protocol.PassPusher` that talks to APNs through an injected HTTP/2 client."""

    def __init__(self, client: httpx.Client, *, topic: str, auth: ApnsTokenAuth | None,
                 base_url: str = APNS_PRODUCTION) -> None:
        self._client = client
        self._topic = topic
        self._auth = auth
        self._base_url = base_url.rstrip("/")

    def push(self, push_token: str) -> PushResult:
        """Send the empty pass-update notification; see :class:`~integrations.wallet.protocol.PassPusher`."""
        headers = {"apns-topic": self._topic, "apns-push-type": "background", "apns-priority": "5"}
        if self._auth is not None:
            headers["authorization"] = self._auth.header()
        try:
            response = self._client.post(f"{self._base_url}/3/device/{push_token}", content=b"{}", headers=headers)
        except httpx.TimeoutException as exc:
            raise WalletUnavailable("apns_timeout") from exc
        except httpx.TransportError as exc:
            raise WalletUnavailable("apns_unreachable") from exc
        if response.status_code == 200:
            return PushResult.DELIVERED
        reason = _reason(response)
        if response.status_code == 410 or reason in _GONE_REASONS:
            return PushResult.GONE
        if response.status_code == 403 or reason in _AUTH_REASONS:
            if reason == "ExpiredProviderToken" and self._auth is not None:
                self._auth.renew()
            raise WalletAuthFailure(f"apns_{reason or response.status_code}")
        if response.status_code == 429 or response.status_code >= 500:
            raise WalletUnavailable(f"apns_{reason or response.status_code}")
        raise WalletRejected(f"apns_{reason or response.status_code}")


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    reason = body.get("reason") if isinstance(body, dict) else None
    # Apple's reasons are short CamelCase words; anything else is not repeated into logs.
    return reason if isinstance(reason, str) and reason.isalnum() and len(reason) <= 40 else ""
