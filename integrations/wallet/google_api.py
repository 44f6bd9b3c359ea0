"""Google Wallet's REST API for our generic objects, with an OAuth 2.0 service-account token.

The service account's JSON key (``client_email``, ``private_key``, ``private_key_id``, ``token_uri``) signs a
JWT-bearer assertion (RS256, scope ``wallet_object.issuer``, audience the token URI) that the token endpoint
exchanges for an access token; the token is kept until a minute before it expires, and dropped when the API answers
401. An object is replaced with ``PUT /walletobjects/v1/genericObject/{id}``; 404 means the member never saved it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from integrations.wallet.errors import WalletAuthFailure, WalletRejected, WalletUnavailable

__all__ = ["WALLET_API", "WALLET_SCOPE", "GoogleWalletClient", "ServiceAccount", "ServiceAccountTokens"]

WALLET_API = "https://walletobjects.googleapis.com"
WALLET_SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_TOKEN_MARGIN_SECONDS = 60.0
# A key file is a few kilobytes; anything much larger is not one.
MAX_KEY_FILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class ServiceAccount:
    """A Google service account's key, as read from its JSON key file.

    ``development`` marks the keys that ``cardsvc demo`` makes (``"cardsvc_development": true``), which Google
    does not know and production refuses.
    """

    client_email: str
    private_key_id: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    token_uri: str
    development: bool = False

    @classmethod
    def from_json(cls, data: bytes) -> ServiceAccount:
        """Parse a JSON key file.

        Raises:
            ValueError: Not a service-account key file (the message says what is wrong, never the key).
        """
        if len(data) > MAX_KEY_FILE_BYTES:
            raise ValueError("the service-account key file is too large")
        try:
            body = json.loads(data)
        except ValueError as exc:
            raise ValueError("the service-account key file is not JSON") from exc
        if not isinstance(body, dict) or body.get("type") != "service_account":
            raise ValueError('the key file is not a service-account key ("type": "service_account")')
        values = {name: body.get(name) for name in ("client_email", "private_key_id", "private_key", "token_uri")}
        missing = [name for name, value in values.items() if not isinstance(value, str) or not value]
        if missing:
            raise ValueError(f"the service-account key file lacks {', '.join(missing)}")
        key = serialization.load_pem_private_key(str(values["private_key"]).encode(), None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the service-account key is not an RSA key")
        return cls(str(values["client_email"]), str(values["private_key_id"]), key, str(values["token_uri"]),
                   body.get("cardsvc_development") is True)


class ServiceAccountTokens:
    """OAuth 2.0 access tokens for a service account (JWT-bearer grant), cached until shortly before expiry."""

    def __init__(self, client: httpx.Client, account: ServiceAccount, *, scope: str = WALLET_SCOPE,
                 clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._account = account
        self._scope = scope
        self._clock = clock
        self._token: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def token(self) -> str:
        """A valid access token.

        Raises:
            WalletAuthFailure: The token endpoint refused the assertion. WalletUnavailable: It could not be reached.
        """
        with self._lock:
            now = self._clock()
            if self._token is not None and now < self._token[0]:
                return self._token[1]
            assertion = jwt.encode(
                {"iss": self._account.client_email, "scope": self._scope, "aud": self._account.token_uri,
                 "iat": int(now), "exp": int(now) + 3600},
                self._account.private_key, algorithm="RS256", headers={"kid": self._account.private_key_id})
            try:
                response = self._client.post(self._account.token_uri,
                                             data={"grant_type": JWT_BEARER, "assertion": assertion})
            except httpx.TransportError as exc:
                raise WalletUnavailable("oauth_unreachable") from exc
            if response.status_code in (400, 401, 403):
                raise WalletAuthFailure(f"oauth_{response.status_code}")
            if response.status_code != 200:
                raise WalletUnavailable(f"oauth_{response.status_code}")
            try:
                body = response.json()
                token, lifetime = str(body["access_token"]), float(body.get("expires_in", 3600))
            except (ValueError, KeyError, TypeError) as exc:
                raise WalletUnavailable("oauth_bad_response") from exc
            self._token = (now + max(lifetime - _TOKEN_MARGIN_SECONDS, 0.0), token)
            return token

    def forget(self) -> None:
        """Drop the cached token (the API refused it)."""
        with self._lock:
            self._token = None


class GoogleWalletClient:
    """A :class:`~integrations.wallet.protocol.WalletObjects` over the Wallet REST API."""

    def __init__(self, client: httpx.Client, tokens: ServiceAccountTokens, *, base_url: str = WALLET_API) -> None:
        self._client = client
        self._tokens = tokens
        self._base_url = base_url.rstrip("/")

    def update_object(self, object_id: str, body: Mapping[str, Any]) -> bool:
        """Replace a generic object; see :class:`~integrations.wallet.protocol.WalletObjects`."""
        url = f"{self._base_url}/walletobjects/v1/genericObject/{quote(object_id, safe='')}"
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {self._tokens.token()}"}
            try:
                response = self._client.put(url, json=dict(body), headers=headers)
            except httpx.TimeoutException as exc:
                raise WalletUnavailable("wallet_api_timeout") from exc
            except httpx.TransportError as exc:
                raise WalletUnavailable("wallet_api_unreachable") from exc
            if response.status_code == 401 and attempt == 0:
                self._tokens.forget()
                continue
            break
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        if response.status_code in (401, 403):
            raise WalletAuthFailure(f"wallet_api_{response.status_code}")
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = response.headers.get("retry-after", "")
            raise WalletUnavailable(f"wallet_api_{response.status_code}",
                                    float(retry_after) if retry_after.isdigit() else None)
        raise WalletRejected(f"wallet_api_{response.status_code}")
