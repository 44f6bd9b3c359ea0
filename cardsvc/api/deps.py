"""Request dependencies as ``Annotated`` aliases: settings, database session, PII cipher, the acting officer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from cardsvc.addresses import public_base_url
from cardsvc.db.models import Station
from cardsvc.errors import AuthenticationFailed
from cardsvc.security import OfficerTokens, PiiCipher
from cardsvc.services import logins
from cardsvc.services.checkins import CheckinCaller
from cardsvc.services.context import Actor
from cardsvc.services.jobs import BatchScheduler
from cardsvc.services.kept_uploads import UploadKeeper
from cardsvc.services.keys import KeyRing
from cardsvc.services.officers import actor_for
from cardsvc.services.stations import DEVICE_TOKEN_PREFIX, station_for_token
from cardsvc.services.status_lists import StatusListCache
from cardsvc.settings import Settings

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A session per request; services commit, and closing it rolls back whatever a failed call left open."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


def get_cipher(request: Request) -> PiiCipher:
    cipher: PiiCipher = request.app.state.cipher
    return cipher


def get_tokens(request: Request) -> OfficerTokens:
    tokens: OfficerTokens = request.app.state.tokens
    return tokens


def get_keyring(request: Request) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


def get_batch_scheduler(request: Request) -> BatchScheduler:
    state = request.app.state
    return BatchScheduler(state.session_factory, state.keyring, state.job_runner,
                          validity_years=state.settings.card_validity_years, list_size=state.settings.status_list_size)


def get_upload_keeper(request: Request) -> UploadKeeper:
    keeper: UploadKeeper = request.app.state.upload_keeper
    return keeper


def get_status_cache(request: Request) -> StatusListCache:
    cache: StatusListCache = request.app.state.status_list_cache
    return cache


def request_id(request: Request) -> str | None:
    value: str | None = getattr(request.state, "request_id", None)
    return value


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
CipherDep = Annotated[PiiCipher, Depends(get_cipher)]
TokensDep = Annotated[OfficerTokens, Depends(get_tokens)]
RequestIdDep = Annotated[str | None, Depends(request_id)]
KeyRingDep = Annotated[KeyRing, Depends(get_keyring)]
BatchSchedulerDep = Annotated[BatchScheduler, Depends(get_batch_scheduler)]
StatusCacheDep = Annotated[StatusListCache, Depends(get_status_cache)]
BearerDep = Annotated[str | None, Depends(oauth2_scheme)]
UploadKeeperDep = Annotated[UploadKeeper, Depends(get_upload_keeper)]
# The address card links and set-up QRs start with (configured, or the request's: cardsvc/addresses.py).
PublicBaseUrlDep = Annotated[str, Depends(public_base_url)]


def current_officer(
    session: SessionDep,
    tokens: TokensDep,
    req_id: RequestIdDep,
    token: BearerDep,
) -> Actor:
    return officer_actor(session, tokens, req_id, token)


def officer_actor(session: Session, tokens: OfficerTokens, req_id: str | None, token: str | None) -> Actor:
    """The officer behind a bearer token (401 ``invalid_token`` otherwise)."""
    officer, _claims = logins.bearer(session, tokens, token)
    return actor_for(officer, req_id)


OfficerDep = Annotated[Actor, Depends(current_officer)]


def current_caller(
    session: SessionDep,
    tokens: TokensDep,
    req_id: RequestIdDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> CheckinCaller:
    """A station's device token (``cdv_…``) or an officer's access token — for event bundles."""
    if token and token.startswith(DEVICE_TOKEN_PREFIX):
        return CheckinCaller(station=station_for_token(session, token), actor=None)
    return CheckinCaller(station=None, actor=officer_actor(session, tokens, req_id, token))


CallerDep = Annotated[CheckinCaller, Depends(current_caller)]


def current_station(session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]) -> Station:
    """A station's device token (``cdv_…``) only: the routes a station polls and reports to."""
    if not token or not token.startswith(DEVICE_TOKEN_PREFIX):
        raise AuthenticationFailed("a station's device token is required", code="invalid_token")
    return station_for_token(session, token)


DeviceDep = Annotated[Station, Depends(current_station)]


def client_address(request: Request) -> str:
    """The client's address as the server sees it (behind nginx: the forwarded one, see docs/operations.md)."""
    return request.client.host if request.client else "unknown"


def limit_login_rate(request: Request) -> None:
    """Login attempts per client address (429 ``login_rate_limited`` with Retry-After), before the username is
    looked at; the pauses per account and address are separate and kept in the database."""
    limiter = request.app.state.rate_limits.login
    if limiter is not None:
        limiter.hit(client_address(request))


def limit_checkin_rate(request: Request, *, station_id: int | None = None, officer_id: int | None = None) -> None:
    """Scans per station (or per officer scanning from the admin pages), 429 ``checkin_rate_limited``."""
    limiter = request.app.state.rate_limits.checkin
    if limiter is not None:
        limiter.hit(f"station:{station_id}" if station_id is not None else f"officer:{officer_id}")


LoginRateLimitDep = Depends(limit_login_rate)

