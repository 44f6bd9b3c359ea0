"""Adapters to the wallet services: Apple's push service (HTTP/2, token auth) and Google Wallet's REST API.

Each sits behind a small Protocol (:mod:`integrations.wallet.protocol`) and takes an injected ``httpx.Client``;
errors are translated at the edge into :mod:`integrations.wallet.errors`.
"""

from integrations.wallet.apns import APNS_PRODUCTION, ApnsClient, ApnsTokenAuth, make_apns_http_client
from integrations.wallet.errors import WalletAuthFailure, WalletRejected, WalletServiceError, WalletUnavailable
from integrations.wallet.google_api import WALLET_API, GoogleWalletClient, ServiceAccount, ServiceAccountTokens
from integrations.wallet.protocol import PassPusher, PushResult, WalletObjects

__all__ = [
    "APNS_PRODUCTION",
    "WALLET_API",
    "ApnsClient",
    "ApnsTokenAuth",
    "GoogleWalletClient",
    "PassPusher",
    "PushResult",
    "ServiceAccount",
    "ServiceAccountTokens",
    "WalletAuthFailure",
    "WalletObjects",
    "WalletRejected",
    "WalletServiceError",
    "WalletUnavailable",
    "make_apns_http_client",
]
