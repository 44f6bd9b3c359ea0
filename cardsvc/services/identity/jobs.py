"""Registry work (sync runs and publications) handed to the registry's own job runner."""

from __future__ import annotations

import os
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from cardsvc.security import PiiCipher
from cardsvc.services.identity.gateway import RegistryGateway
from cardsvc.services.identity.publication import run_publication
from cardsvc.services.identity.sync import SyncOptions, run_sync
from cardsvc.services.jobs import JobRunner


class RegistryJobs:
    """Hands registry work — sync runs and publications — to the registry's job runner: in the server a few threads
    of their own (``CARDSVC_REGISTRY_JOB_CONCURRENCY``), never a request's thread; inline in tests. The gateway
    stops when the runner does."""

    def __init__(self, session_factory: sessionmaker[Session] | Callable[[], Session], gateway: RegistryGateway,
                 cipher: PiiCipher, runner: JobRunner, *, batch_size: int, lease_seconds: int) -> None:
        self._session_factory = session_factory
        self._gateway = gateway
        self._cipher = cipher
        self._runner = runner
        # Unique among live workers: several server processes may share a run's items.
        self._options = SyncOptions(worker=f"server-{os.getpid()}", batch_size=batch_size,
                                    lease_seconds=lease_seconds)

    def submit_sync(self, run_id: int) -> None:
        self._runner.submit(lambda: run_sync(self._session_factory, self._gateway, self._cipher, run_id,
                                             self._options))

    def submit_publication(self, job_id: int) -> None:
        self._runner.submit(lambda: run_publication(self._session_factory, self._gateway, self._cipher, job_id))
