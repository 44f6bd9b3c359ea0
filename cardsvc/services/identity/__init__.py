"""Identity checks with the national population registry (DOMAIN.md §7–§8), one module per concern:

* :mod:`.gateway` — the registry the settings ask for (with a :class:`~.gateway.DevelopmentRegistry` injected outside
  production) and the gateway every call goes through;
* :mod:`.sync` — sync runs that verify consenting members; :mod:`.jobs` hands them and publications to the
  registry's job runner;
* :mod:`.reviews` — the officer reviews that registry answers and notifications open;
* :mod:`.notifications` — the registry's change feed;
* :mod:`.publication` — publishing and withdrawing membership facts;
* :mod:`.coverage` — verification coverage per chapter;
* :mod:`.scope` — what they share (consents, verifiable statuses, the chapter subtree asked about).

Callers import the module they need (``from cardsvc.services.identity import sync``); this package re-exports
nothing.
"""
