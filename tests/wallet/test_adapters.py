"""The wallet adapters through their real client code against real fake servers: APNs over HTTP/2 with TLS,
Google's token endpoint and Wallet API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from integrations.wallet import (
    ApnsClient,
    ApnsTokenAuth,
    GoogleWalletClient,
    PushResult,
    ServiceAccount,
    ServiceAccountTokens,
    WalletAuthFailure,
    WalletRejected,
    WalletUnavailable,
    make_apns_http_client,
)
from tests.wallet.fakes import APNS_KEY_ID, PASS_TYPE_ID, TEAM_ID, FakeApns, FakeGoogleWallet, WalletPki, make_pki

TOKEN = "a1" * 32


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> WalletPki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def apns(pki: WalletPki) -> Iterator[FakeApns]:
    with FakeApns(pki) as server:
        yield server


def _client(pki: WalletPki, apns: FakeApns, key: ec.EllipticCurvePrivateKey | None = None) -> ApnsClient:
    http = make_apns_http_client(ca_file=str(pki.paths["ca"]))
    return ApnsClient(http, topic=PASS_TYPE_ID, auth=ApnsTokenAuth(APNS_KEY_ID, TEAM_ID, key or pki.apns_key),
                      base_url=apns.url)


def test_apns_push_is_an_empty_http2_request_with_a_provider_token(pki: WalletPki, apns: FakeApns) -> None:
    client = _client(pki, apns)
    assert client.push(TOKEN) is PushResult.DELIVERED
    assert client.push(TOKEN) is PushResult.DELIVERED
    assert apns.protocols == ["h2"]  # one TLS connection, HTTP/2 chosen by ALPN, reused for both pushes
    push = apns.pushes[0]
    assert push.token == TOKEN and push.body == b"{}"
    assert push.headers["apns-topic"] == PASS_TYPE_ID and push.headers["apns-push-type"] == "background"
    # The provider token is kept, not signed again for every push.
    assert apns.pushes[0].headers["authorization"] == apns.pushes[1].headers["authorization"]


@pytest.mark.parametrize(("answer", "expected"), [((410, "Unregistered"), PushResult.GONE),
                                                  ((400, "BadDeviceToken"), PushResult.GONE)])
def test_apns_gone_device_tokens(pki: WalletPki, apns: FakeApns, answer: tuple[int, str],
                                 expected: PushResult) -> None:
    apns.answers[TOKEN] = answer
    assert _client(pki, apns).push(TOKEN) is expected


@pytest.mark.parametrize(("answer", "error"), [((429, "TooManyRequests"), WalletUnavailable),
                                               ((503, "ServiceUnavailable"), WalletUnavailable),
                                               ((400, "BadTopic"), WalletRejected)])
def test_apns_errors_are_translated(pki: WalletPki, apns: FakeApns, answer: tuple[int, str],
                                    error: type[Exception]) -> None:
    apns.answers[TOKEN] = answer
    with pytest.raises(error) as raised:
        _client(pki, apns).push(TOKEN)
    assert answer[1] in str(raised.value)


def test_apns_refuses_a_token_signed_with_another_key(pki: WalletPki, apns: FakeApns) -> None:
    with pytest.raises(WalletAuthFailure, match="InvalidProviderToken"):
        _client(pki, apns, ec.generate_private_key(ec.SECP256R1())).push(TOKEN)
    assert apns.pushes == []


def test_apns_unreachable_is_retryable(pki: WalletPki) -> None:
    client = ApnsClient(make_apns_http_client(ca_file=str(pki.paths["ca"]), timeout=2), topic=PASS_TYPE_ID,
                        auth=ApnsTokenAuth(APNS_KEY_ID, TEAM_ID, pki.apns_key), base_url="https://127.0.0.1:9")
    with pytest.raises(WalletUnavailable, match="apns_unreachable"):
        client.push(TOKEN)


@pytest.fixture
def google(pki: WalletPki, tmp_path: Path) -> Iterator[tuple[FakeGoogleWallet, GoogleWalletClient]]:
    with FakeGoogleWallet() as server:
        key_file = pki.service_account(f"{server.url}/token")
        server.trust(key_file)
        http = httpx.Client(timeout=5)
        account = ServiceAccount.from_json(key_file.read_bytes())
        yield server, GoogleWalletClient(http, ServiceAccountTokens(http, account), base_url=server.url)


def test_google_object_update_with_an_oauth_token(google: tuple[FakeGoogleWallet, GoogleWalletClient]) -> None:
    server, client = google
    assert client.update_object("3388.abc", {"id": "3388.abc", "state": "INACTIVE"}) is False  # never saved
    server.objects["3388.abc"] = {"id": "3388.abc", "state": "ACTIVE"}
    assert client.update_object("3388.abc", {"id": "3388.abc", "state": "INACTIVE"}) is True
    assert server.objects["3388.abc"]["state"] == "INACTIVE"
    assert server.tokens_issued == 1  # the access token is kept between calls


def test_google_errors_are_translated(google: tuple[FakeGoogleWallet, GoogleWalletClient]) -> None:
    server, client = google
    server.objects["3388.abc"] = {}
    server.fail_next = [503, 400]
    with pytest.raises(WalletUnavailable, match="wallet_api_503"):
        client.update_object("3388.abc", {})
    with pytest.raises(WalletRejected, match="wallet_api_400"):
        client.update_object("3388.abc", {})


def test_google_refuses_an_unknown_service_account(pki: WalletPki, tmp_path: Path) -> None:
    with FakeGoogleWallet() as server:
        server.trust(pki.service_account(f"{server.url}/token"))
        stranger = ServiceAccount.from_json(pki.service_account(f"{server.url}/token").read_bytes())
        http = httpx.Client(timeout=5)
        client = GoogleWalletClient(http, ServiceAccountTokens(http, stranger), base_url=server.url)
        with pytest.raises(WalletAuthFailure, match="oauth_400"):
            client.update_object("3388.abc", {})


def test_service_account_key_file_errors_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        ServiceAccount.from_json(b"{")
    with pytest.raises(ValueError, match="service-account key"):
        ServiceAccount.from_json(b'{"type": "authorized_user"}')
    with pytest.raises(ValueError, match="lacks client_email"):
        ServiceAccount.from_json(b'{"type": "service_account", "private_key_id": "x", "private_key": "x", '
                                 b'"token_uri": "x"}')
