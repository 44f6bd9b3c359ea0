"""Public documents for verifiers: JWKS, trust anchor, trust bundle and status lists (no login needed)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Response

from cardsvc.api.deps import KeyRingDep, SessionDep, SettingsDep, StatusCacheDep
from cardsvc.api.schemas import Id
from cardsvc.services import publication

router = APIRouter(tags=["publication"])


@router.get("/.well-known/jwks.json")
def jwks(session: SessionDep, response: Response) -> dict[str, Any]:
    """Card-verification public keys (OKP Ed25519 / EC P-256) with ``kid``, ``alg`` and ``use``."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return publication.jwks(session)


@router.get("/.well-known/cardsvc-trust-anchor.json", responses={404: {}})
def trust_anchor(session: SessionDep) -> dict[str, Any]:
    """The key that signs trust bundles and status lists; stations pin it at provisioning."""
    return publication.trust_anchor(session)


@router.get("/.well-known/cardsvc-trust-bundle", response_class=Response,
            responses={200: {"content": {"application/jwt": {}}}})
def trust_bundle(session: SessionDep, keyring: KeyRingDep, settings: SettingsDep) -> Response:
    """Card keys with their status, status-list locations and issuer metadata, as a JWT signed by the anchor."""
    return Response(publication.trust_bundle(session, keyring, settings), media_type="application/jwt",
                    headers={"Cache-Control": "public, max-age=300"})


@router.get("/v1/status-lists/{list_id}", response_class=Response,
            responses={200: {"content": {"application/statuslist+jwt": {}}}, 304: {"description": "unchanged"}})
def status_list(list_id: Id, session: SessionDep, keyring: KeyRingDep, settings: SettingsDep,
                cache: StatusCacheDep, if_none_match: Annotated[str | None, Header(max_length=200)] = None
                ) -> Response:
    """A signed status list (2 bits per card: valid, revoked, suspended, superseded) with ETag and TTL."""
    _key, signer = keyring.active_signer(session, "trust")
    token = cache.get(session, signer, list_id=list_id, uri=publication.status_list_uri(settings, list_id),
                      ttl=settings.status_list_ttl_seconds)
    headers = {"ETag": token.etag, "Cache-Control": f"public, max-age={token.ttl}"}
    if if_none_match is not None and token.etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(token.token, media_type="application/statuslist+jwt", headers=headers)
