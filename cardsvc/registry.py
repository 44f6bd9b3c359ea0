"""Where the application and the commands get their population registry (:mod:`cardsvc.services.identity.gateway`).

Outside production the development registry (the demo's records for the stub, the fake registry's keys) is injected
here; a production service never imports :mod:`cardsvc.demo` or the fake registry.
"""

from __future__ import annotations

from cardsvc.services.identity.gateway import DevelopmentRegistry, RegistryGateway, make_registry
from cardsvc.settings import Settings
from integrations.population import PopulationRegistry


def development_registry_for(settings: Settings) -> DevelopmentRegistry | None:
    """The development registry, or None in production."""
    if settings.environment == "production":
        return None
    from cardsvc.demo.registry import development_registry

    return development_registry()


def registry_for(settings: Settings) -> PopulationRegistry:
    """The registry the settings ask for (:func:`~cardsvc.services.identity.gateway.make_registry`)."""
    return make_registry(settings, development_registry_for(settings))


def gateway_for(settings: Settings) -> RegistryGateway:
    """The registry named by the settings, behind a :class:`RegistryGateway` (for commands that run outside the
    server; the server keeps its registry in ``app.state.registry``)."""
    return RegistryGateway.from_settings(settings, registry_for(settings))
