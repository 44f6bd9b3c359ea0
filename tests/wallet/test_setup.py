"""Wallet configuration: `cardsvc wallet check`, development credentials (used in development, refused in
production), mismatched certificates, and the officer pages' expiry warning."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cardsvc.cli import main
from cardsvc.demo.wallet import make_development_credentials
from cardsvc.services.wallet import load_setup
from cardsvc.services.wallet_updates import make_senders
from cardsvc.settings import Settings
from tests.conftest import TEST_SECRET, Tree
from tests.server.test_admin_pages_http import page_login
from tests.wallet.fakes import APNS_KEY_ID, ISSUER_ID, PASS_TYPE_ID, TEAM_ID, WalletPki, make_pki
from tests.wallet.test_wallet import wallet_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Path:
    """An empty working directory (no .env, no var/) and test settings from the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARDSVC_ENVIRONMENT", "test")
    monkeypatch.setenv("CARDSVC_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("CARDSVC_DATABASE_URL", database_url)
    return tmp_path


def test_wallet_check_names_what_is_missing(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wallet", "check"]) == 1
    out = capsys.readouterr().out
    assert "Apple Wallet: NOT configured" in out and "Google Wallet: NOT configured" in out
    assert "CARDSVC_WALLET_CERTIFICATE_FILE is not set" in out
    assert "CARDSVC_WALLET_GOOGLE_KEY_FILE is not set" in out


def _configure(monkeypatch: pytest.MonkeyPatch, pki: WalletPki) -> None:
    for name, value in {"PASS_TYPE_ID": PASS_TYPE_ID, "TEAM_ID": TEAM_ID, "APNS_KEY_ID": APNS_KEY_ID,
                        "CERTIFICATE_FILE": pki.paths["certificate"], "KEY_FILE": pki.paths["key"],
                        "WWDR_FILE": pki.paths["ca"], "APNS_KEY_FILE": pki.paths["apns_key"],
                        "GOOGLE_ISSUER_ID": ISSUER_ID,
                        "GOOGLE_KEY_FILE": pki.service_account("https://oauth2.example/token")}.items():
        monkeypatch.setenv(f"CARDSVC_WALLET_{name}", str(value))


def test_wallet_check_reports_days_left(clean_env: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    _configure(monkeypatch, make_pki(clean_env / "pki"))
    assert main(["wallet", "check"]) == 0
    out = capsys.readouterr().out
    assert "Apple Wallet: configured" in out and "Google Wallet: configured" in out
    assert "certificate pass: 36" in out and "days left" in out
    _configure(monkeypatch, make_pki(clean_env / "short", pass_days=20))
    assert main(["wallet", "check"]) == 1  # a certificate expires within 30 days
    assert "certificate pass: 19 days left" in capsys.readouterr().out


def test_development_credentials_are_used_in_development_only(clean_env: Path) -> None:
    assert make_development_credentials() is True
    assert make_development_credentials() is False  # already there: nothing rewritten
    development = Settings(environment="development", secret_key=TEST_SECRET, _env_file=None)  # type: ignore[call-arg]
    assert development.wallet_certificate_file == Path("var/wallet-dev/pass-certificate.pem")
    setup = load_setup(development)
    assert setup.apple is not None and setup.apple.development
    assert setup.google is not None and setup.google.account.development
    # Signed passes and save links for the demo, but nothing is ever sent to Apple or Google with them.
    senders = make_senders(setup, development)
    assert senders.pusher is None and senders.objects is None
    production = load_setup(development.model_copy(update={"environment": "production"}))
    assert production.apple is None and production.google is None
    assert any("NOT APPLE'S" in problem for problem in production.problems)
    assert any("development one made by `cardsvc demo`" in problem for problem in production.problems)
    test_settings = Settings(environment="test", secret_key=TEST_SECRET, _env_file=None)  # type: ignore[call-arg]
    assert test_settings.wallet_certificate_file is None


def test_a_certificate_of_another_pass_type_or_key_is_refused(settings: Settings, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    other = make_pki(tmp_path / "other")
    wrong_type = load_setup(wallet_settings(settings, pki, wallet_pass_type_id="pass.other.type"))
    assert wrong_type.apple is None
    assert any("not CARDSVC_WALLET_PASS_TYPE_ID" in problem for problem in wrong_type.problems)
    wrong_key = load_setup(wallet_settings(settings, pki, wallet_key_file=other.paths["key"]))
    assert wrong_key.apple is None
    assert any("does not belong to the pass certificate" in problem for problem in wrong_key.problems)


@pytest.fixture
def expiring(app: FastAPI, settings: Settings, tmp_path: Path) -> Iterator[None]:
    previous = app.state.wallet
    app.state.wallet = load_setup(wallet_settings(settings, make_pki(tmp_path / "pki", pass_days=20)))
    yield
    app.state.wallet = previous


def test_admin_home_warns_a_month_before_the_certificate_expires(client: TestClient, tree: Tree,
                                                                 expiring: None) -> None:
    page_login(client, "t.admin")
    home = client.get("/admin").text
    assert 'id="wallet-expiry"' in home and "Chứng chỉ Apple Wallet hết hạn sau 19 ngày" in home


def test_officers_without_admin_rights_are_not_warned(client: TestClient, tree: Tree, expiring: None) -> None:
    page_login(client, "t.officer.a")
    assert 'id="wallet-expiry"' not in client.get("/admin").text


def test_no_warning_with_a_year_left(client: TestClient, app: FastAPI, settings: Settings, tree: Tree,
                                     tmp_path: Path) -> None:
    previous = app.state.wallet
    app.state.wallet = load_setup(wallet_settings(settings, make_pki(tmp_path / "pki")))
    try:
        page_login(client, "t.admin")
        assert 'id="wallet-expiry"' not in client.get("/admin").text
    finally:
        app.state.wallet = previous
