"""Officer pages (``/admin``): login, members and their cards and card links, printing, imports, events, stations
and the day of an event, and how phones trust a venue laptop's HTTPS certificate.

Server-rendered (Jinja2) with a little JavaScript from ``static/``; Vietnamese first. See :mod:`.pages`.
"""

from fastapi import APIRouter

from cardsvc.web.admin import event_pages, link_pages, pages, tls_page

router = APIRouter()
# pages first: its /admin/events/new must be tried before event_pages' /admin/events/{event_id}.
for module in (pages, event_pages, link_pages, tls_page):
    router.include_router(module.router)

__all__ = ["router"]
