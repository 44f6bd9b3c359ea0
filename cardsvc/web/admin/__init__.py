"""Officer pages (``/admin``): login, members and their cards, printing, imports, events and stations.

Server-rendered (Jinja2) with a little JavaScript from ``static/``; Vietnamese first. See :mod:`.pages`.
"""

from cardsvc.web.admin.pages import router

__all__ = ["router"]
