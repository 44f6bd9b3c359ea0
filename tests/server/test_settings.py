"""Settings: production refuses unsafe secrets; keys are derived per purpose."""

from pathlib import Path

import pytest

from cardsvc.settings import INSECURE_DEV_SECRET, Settings, SettingsError


def make(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_production_refuses_default_secret() -> None:
    with pytest.raises(SettingsError, match="CARDSVC_SECRET_KEY"):
        make(environment="production", secret_key=INSECURE_DEV_SECRET, database_url="postgresql://db/x")


def test_production_refuses_missing_secret_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="init-secret"):
        make(environment="production", secret_key_file=tmp_path / "absent.key", database_url="postgresql://db/x")


def test_production_refuses_default_database(tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    make(secret_key_file=key).master_secret  # noqa: B018  (development creates the file)
    with pytest.raises(SettingsError, match="CARDSVC_DATABASE_URL"):
        make(environment="production", secret_key_file=key, key_encryption_key="k" * 40)


def test_production_refuses_missing_key_encryption_key(tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    make(secret_key_file=key).master_secret  # noqa: B018
    with pytest.raises(SettingsError, match="CARDSVC_KEY_ENCRYPTION_KEY_FILE"):
        make(environment="production", secret_key_file=key, key_encryption_key_file=tmp_path / "none",
             database_url="postgresql://db/x")


def test_development_creates_a_private_secret_file(tmp_path: Path) -> None:
    key = tmp_path / "var" / "secret.key"
    first = make(secret_key_file=key).master_secret
    assert key.stat().st_mode & 0o777 == 0o600
    assert make(secret_key_file=key).master_secret == first
    assert len(first) == 32


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDSVC_DATABASE_URL", "sqlite:////tmp/x.sqlite3")
    monkeypatch.setenv("CARDSVC_ACCESS_TOKEN_MINUTES", "5")
    settings = make()
    assert settings.database_url == "sqlite:////tmp/x.sqlite3"
    assert settings.access_token_minutes == 5


def test_derived_keys_differ_per_purpose() -> None:
    settings = make(secret_key="s" * 40)
    keys = {settings.derived_key(p) for p in ("pii-encryption", "pii-blind-index", "officer-token")}
    assert len(keys) == 3
