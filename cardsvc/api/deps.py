"""Request dependencies as ``Annotated`` aliases: settings, database session, PII cipher, the acting officer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from cardsvc.errors import AuthenticationFailed
from cardsvc.security import InvalidToken, OfficerTokens, PiiCipher
from cardsvc.services.context import Actor
from cardsvc.services.officers import actor_for, officer_for_token
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


def request_id(request: Request) -> str | None:
    value: str | None = getattr(request.state, "request_id", None)
    return value


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
CipherDep = Annotated[PiiCipher, Depends(get_cipher)]
TokensDep = Annotated[OfficerTokens, Depends(get_tokens)]
RequestIdDep = Annotated[str | None, Depends(request_id)]


def current_officer(
    session: SessionDep,
    tokens: TokensDep,
    req_id: RequestIdDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Actor:
    if not token:
        raise AuthenticationFailed("authentication required: send a bearer token", code="invalid_token")
    try:
        claims = tokens.verify(token)
    except InvalidToken as exc:
        raise AuthenticationFailed("the access token is invalid or expired", code="invalid_token") from exc
    return actor_for(officer_for_token(session, claims.officer_id), req_id)


OfficerDep = Annotated[Actor, Depends(current_officer)]
