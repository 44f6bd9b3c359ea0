"""Service settings, read from ``CARDSVC_*`` environment variables and an optional ``.env`` file.

Nothing here runs at import time: the application factory and the CLI build a :class:`Settings` object and pass it
down. Secrets (the PII encryption key, the blind-index key and the officer-token key) come from one secret file;
in development the file is created on first use, in production a missing or default secret is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from functools import cached_property
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///var/cardsvc.sqlite3"
DEFAULT_SECRET_KEY_FILE = "var/secret.key"
DEFAULT_KEK_FILE = "var/key-encryption.key"
DEV_WALLET_DIR = Path("var/wallet-dev")
# Made by `cardsvc demo` (cardsvc/demo/wallet.py): a self-made CA and pass certificate, an APNs key and a Google
# service-account key, none of them known to Apple or Google.
DEV_WALLET_DEFAULTS: dict[str, str | Path] = {
    "wallet_pass_type_id": "pass.vn.hoilhpn.cardsvc.development",
    "wallet_team_id": "DEVTEAM000",
    "wallet_certificate_file": DEV_WALLET_DIR / "pass-certificate.pem",
    "wallet_key_file": DEV_WALLET_DIR / "pass-key.pem",
    "wallet_wwdr_file": DEV_WALLET_DIR / "development-ca.pem",
    "wallet_apns_key_file": DEV_WALLET_DIR / "apns-key.p8",
    "wallet_apns_key_id": "DEVKEY0000",
    "wallet_google_issuer_id": "3388000000000000000",
    "wallet_google_key_file": DEV_WALLET_DIR / "google-service-account.json",
}
# A well-known development value: refused in production so a copied .env cannot reach a real deployment.
INSECURE_DEV_SECRET = "insecure-development-secret-change-me"


class SettingsError(RuntimeError):
    """The configuration cannot be used; the message says which setting and what to do."""


class Settings(BaseSettings):
    """All configuration of the service. Every field maps to ``CARDSVC_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="CARDSVC_", env_file=".env", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    # PostgreSQL connections kept open per server process, and how many more a burst may open (and close again).
    # A request that finds the pool busy waits for a connection; opening one per request would cost far more than
    # the request. Keep workers × (size + overflow) under the server's max_connections (100 by default).
    db_pool_size: int = Field(default=20, ge=1, le=500)
    db_max_overflow: int = Field(default=10, ge=0, le=500)
    # PostgreSQL: a server statement running longer than this is cancelled and its request answered 503, so a slow
    # statement (a lock held elsewhere, a runaway query) frees its connection and thread (0: no limit).
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    # SIGTERM: requests in flight get this long to finish, then the server stops whatever still runs.
    shutdown_grace_seconds: int = Field(default=20, ge=1, le=600)
    # Check-ins worked on at once by one server process; more wait their turn. A few at a time keep the queue moving
    # (more threads only fight over the interpreter lock: 4 beat 8 and 16 in bench/checkin_load.py) and leave the
    # rest of the thread pool to other requests. Raise it when the database is far away (each scan waits longer).
    checkin_concurrency: int = Field(default=4, ge=1, le=200)
    secret_key_file: Path = Path(DEFAULT_SECRET_KEY_FILE)
    # Optional inline secret (base64 or text, at least 32 bytes); wins over the file. Meant for tests and containers.
    secret_key: str | None = None
    access_token_minutes: int = Field(default=30, ge=1, le=24 * 60)
    token_issuer: str = "cardsvc"
    token_audience: str = "cardsvc-officers"
    # A password login opens a session of at most this many hours: refreshed tokens and the officer pages' session
    # (which also ends after ACCESS_TOKEN_MINUTES without a request) never outlive it.
    session_max_hours: int = Field(default=12, ge=1, le=7 * 24)
    # Wrong passwords from one client address before logins of that account from there pause (doubling, at most an
    # hour); see services/logins.py for the pause of unknown addresses.
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_seconds: int = Field(default=60, ge=1)
    max_json_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    # Member files with problems are kept (encrypted) this long, so the officer can download them with an error
    # column; every worker process must see the directory.
    import_download_dir: Path = Path("var/import-downloads")
    import_download_minutes: int = Field(default=15, ge=1, le=24 * 60)
    union_name: str = "Hội Liên hiệp Phụ nữ Việt Nam"
    # The address members and stations use (https://the.union.example). Unset: the address of each request (what
    # the officer's browser used), so a laptop on a venue's network gives phones its LAN address.
    public_base_url: str | None = None
    # Proxies (addresses or networks, comma list) whose X-Forwarded-Proto and X-Forwarded-Host are believed when an
    # address is built from a request. Empty: nobody's.
    trusted_proxies: str = ""
    # `cardsvc serve --tls`: the local certificate authority and the LAN certificate it signs (docs/operations.md).
    tls_dir: Path = Path("var/tls")
    # The key-encryption key protects signing keys at rest; keep it outside the database (and its backups).
    key_encryption_key_file: Path = Path(DEFAULT_KEK_FILE)
    key_encryption_key: str | None = None
    card_validity_years: int = Field(default=5, ge=1, le=20)
    # Entries per status list: at least 131,072 so that a card's index says nothing about who holds it.
    status_list_size: int = Field(default=2**20, ge=1024, le=2**24)
    status_list_ttl_seconds: int = Field(default=3600, ge=60)
    trust_bundle_days: int = Field(default=7, ge=1, le=90)
    log_level: str = "INFO"
    # The national population registry (DOMAIN.md §7). "http" talks to the data exchange (in development, to
    # `cardsvc fake-registry` on port 8900 with its built-in keys); "stub" answers in-process from the members table.
    registry_mode: Literal["stub", "http"] = "http"
    registry_base_url: str = "http://127.0.0.1:8900"
    # LGSP credentials. Unset outside production: the fake registry's development keys are used.
    registry_access_key: str | None = None
    registry_secret_key: str | None = Field(default=None, repr=False)
    registry_app_name: str = "cardsvc"
    registry_partner_code: str = "HLHPN"
    registry_agency_code: str = "HLHPN-TW"
    registry_service_code: str = "CARDSVC-DANCU"
    registry_procedure_code: str = "HLHPN-XTHV"
    registry_organisation_code: str = "HLHPN"
    registry_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    registry_connect_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    # Registry jobs (sync runs, publications) a server process works on at once; more wait their turn. They run on
    # their own threads, never on a request's.
    registry_job_concurrency: int = Field(default=2, ge=1, le=32)
    registry_max_retries: int = Field(default=3, ge=0, le=10)
    # Calls a second the union agreed with the exchange (0: no client-side limit).
    registry_rate_limit_per_second: float = Field(default=10.0, ge=0)
    registry_client_cert_file: Path | None = None
    registry_client_key_file: Path | None = None
    registry_ca_file: Path | None = None
    # Members verified (with an answer) more recently than this are skipped by a new run unless it is forced.
    registry_reverify_days: int = Field(default=180, ge=0)
    registry_claim_batch_size: int = Field(default=20, ge=1, le=1000)
    # A worker's claim on sync items expires after this long, so items of a crashed worker are taken over.
    registry_claim_lease_seconds: int = Field(default=300, ge=1)
    # /metrics answers requests from 127.0.0.1 and, when this is set, requests bearing it as a bearer token.
    metrics_token: str | None = Field(default=None, repr=False)
    # Per process (each worker counts on its own): failed and successful logins from one client address a minute,
    # and scans from one station a second (0: no limit).
    login_rate_per_minute: int = Field(default=20, ge=0)
    checkin_rate_per_second: int = Field(default=20, ge=0)
    # Origins allowed to call the API from a browser (comma list). Empty: no cross-origin request is allowed.
    cors_origins: str = ""
    # Wallet passes (docs/operations.md, "Wallet passes"). Apple: the Pass Type ID certificate and its key (PEM),
    # Apple's WWDR intermediate, the pass type id and team id, and an APNs auth key (.p8) for update pushes. Google:
    # the issuer id and the service account's JSON key. Without them the wallet buttons are hidden. In development,
    # unset values default to the credentials `cardsvc demo` makes under var/wallet-dev/ (marked "NOT APPLE'S";
    # production refuses them).
    wallet_pass_type_id: str | None = None
    wallet_team_id: str | None = None
    wallet_certificate_file: Path | None = None
    wallet_key_file: Path | None = None
    wallet_key_password: str | None = Field(default=None, repr=False)
    wallet_wwdr_file: Path | None = None
    wallet_apns_key_file: Path | None = None
    wallet_apns_key_id: str | None = None
    wallet_apns_url: str = "https://api.push.apple.com"
    wallet_google_issuer_id: str | None = None
    wallet_google_key_file: Path | None = None
    wallet_google_api_url: str = "https://walletobjects.googleapis.com"
    wallet_google_class_suffix: str = Field(default="member_card", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    # A square PNG of the union's logo for the passes (default: the member page's icon); Google loads the logo from
    # the public address, so it is served at /wallet/logo.png.
    wallet_logo_file: Path | None = None
    # CA bundle trusted instead of the system's for APNs and Google (a TLS-inspecting proxy; the tests' fakes).
    wallet_ca_file: Path | None = None
    # Attempts of one pass update before it is given up (pauses double from 30 seconds up to 6 hours), and how often
    # a server worker looks for updates to send.
    wallet_max_attempts: int = Field(default=12, ge=1, le=50)
    wallet_poll_seconds: float = Field(default=5.0, gt=0, le=3600)

    @cached_property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        try:
            return tuple(ip_network(part.strip(), strict=False) for part in self.trusted_proxies.split(",")
                         if part.strip())
        except ValueError as exc:
            raise SettingsError(f"CARDSVC_TRUSTED_PROXIES: {exc}") from exc

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        text = (value or "").strip().rstrip("/")
        if text and not text.startswith(("http://", "https://")):
            raise ValueError("CARDSVC_PUBLIC_BASE_URL must start with https:// (or http://)")
        return text or None

    @model_validator(mode="after")
    def _development_wallet_credentials(self) -> Settings:
        if self.environment == "development":
            for name, value in DEV_WALLET_DEFAULTS.items():
                if getattr(self, name) is None and (not name.endswith("_file") or Path(str(value)).is_file()):
                    setattr(self, name, value)
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment != "production":
            return self
        if self.secret_key is not None:
            if self.secret_key == INSECURE_DEV_SECRET or len(self.secret_key) < 32:
                raise SettingsError(
                    "CARDSVC_SECRET_KEY is the development default or shorter than 32 characters; "
                    "production needs a random secret (or unset it and use CARDSVC_SECRET_KEY_FILE)."
                )
        elif not self.secret_key_file.is_file():
            raise SettingsError(
                f"CARDSVC_SECRET_KEY_FILE ({self.secret_key_file}) does not exist. In production the secret is "
                "never created automatically: run `cardsvc init-secret --file PATH` once, back the file up, "
                "and point CARDSVC_SECRET_KEY_FILE at it."
            )
        if self.key_encryption_key is None and not self.key_encryption_key_file.is_file():
            raise SettingsError(
                f"CARDSVC_KEY_ENCRYPTION_KEY_FILE ({self.key_encryption_key_file}) does not exist. Create it with "
                "`cardsvc init-secret --file PATH` on a medium kept apart from database backups."
            )
        if self.database_url == DEFAULT_DATABASE_URL:
            raise SettingsError(
                "CARDSVC_DATABASE_URL is not set; production needs an explicit database (PostgreSQL)."
            )
        if self.registry_mode != "http":
            raise SettingsError("CARDSVC_REGISTRY_MODE=stub answers from the service's own data; production "
                                "needs the real registry (http)")
        if not self.registry_access_key or not self.registry_secret_key:
            raise SettingsError("CARDSVC_REGISTRY_ACCESS_KEY and CARDSVC_REGISTRY_SECRET_KEY must be set in "
                                "production (the LGSP keys granted to the union)")
        return self

    @cached_property
    def master_secret(self) -> bytes:
        """The root secret from which the PII, blind-index and token keys are derived."""
        if self.secret_key is not None:
            return self.secret_key.encode()
        secret = _read_secret_file(self.secret_key_file, create=self.environment != "production")
        if self.environment == "production" and secret == INSECURE_DEV_SECRET.encode():
            raise SettingsError(f"secret key file {self.secret_key_file} holds the development default")
        return secret

    @cached_property
    def kek(self) -> bytes:
        """The key-encryption key for signing keys (never derived from the database-side secret)."""
        if self.key_encryption_key is not None:
            if len(self.key_encryption_key) < 32:
                raise SettingsError("CARDSVC_KEY_ENCRYPTION_KEY must have at least 32 characters")
            return self.key_encryption_key.encode()
        return _read_secret_file(self.key_encryption_key_file, create=self.environment != "production")

    def derived_key(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose (HKDF-style expansion with HMAC-SHA256), so keys never get reused."""
        return hmac.new(self.master_secret, b"cardsvc/" + purpose.encode(), hashlib.sha256).digest()


def _read_secret_file(path: Path, *, create: bool) -> bytes:
    if not path.is_file():
        if not create:
            raise SettingsError(f"secret file {path} is missing")
        write_secret_file(path)
    raw = path.read_bytes().strip()
    try:
        secret = base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise SettingsError(f"secret file {path} is not base64") from exc
    if len(secret) < 32:
        raise SettingsError(f"secret file {path} holds fewer than 32 bytes")
    return secret


def write_secret_file(path: Path) -> None:
    """Create a new random secret file readable by its owner only; refuse to overwrite an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(secrets.token_bytes(32)) + b"\n")
