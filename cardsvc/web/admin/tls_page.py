"""How a phone trusts a venue laptop's HTTPS (``cardsvc serve --tls``): the local authority's certificate to
download, its fingerprint, and the steps on Android and iPhone. Open to everybody, like the login page: a steward's
phone needs it before anyone signs in on it, and the certificate is public."""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter
from fastapi.responses import Response

from cardsvc.addresses import public_base_url
from cardsvc.api.deps import SettingsDep
from cardsvc.errors import NotFound
from cardsvc.tls import authority_certificate, fingerprint
from cardsvc.web.admin.context import PREFIX, PageDep, PageRoute
from cardsvc.web.admin.qr import text_qr_svg

router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)
STEPS = 4


@router.get("/tls")
def tls_help(page: PageDep, settings: SettingsDep) -> Response:
    authority = authority_certificate(settings.tls_dir)
    here = f"{public_base_url(page.request)}{PREFIX}/tls"
    return page.render("tls.html", fingerprint=fingerprint(authority) if authority else None, steps=range(1, STEPS + 1),
                       page_qr=text_qr_svg(here, page.t("tls.title")), page_url=here)


@router.get("/tls/ca.crt")
def tls_authority(settings: SettingsDep) -> Response:
    """The local authority's certificate (DER), as phones install it: Android and iOS offer to install this type."""
    authority = authority_certificate(settings.tls_dir)
    if authority is None:
        raise NotFound("this server has no local certificate authority")
    return Response(authority.public_bytes(Encoding.DER), media_type="application/x-x509-ca-cert",
                    headers={"Content-Disposition": 'attachment; filename="cardsvc-ca.crt"',
                             "Cache-Control": "no-cache"})
