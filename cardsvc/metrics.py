"""Prometheus metrics: requests by route template and status, latency, check-ins, verifications, job progress.

Every application gets its own :class:`~prometheus_client.CollectorRegistry` (tests build many applications in one
process; the global registry would refuse the second set of metrics). With several uvicorn workers, set
``PROMETHEUS_MULTIPROC_DIR`` to an empty folder writable by the service: ``prometheus_client`` then keeps the values
in files there and ``/metrics`` adds up every worker's (docs/operations.md). Job progress is read from the database
when scraped, so it is right whichever worker answers.

Labels hold route templates (``/v1/members/{member_id}``) and stable codes only — never ids, names or paths with
personal data, which would also make the number of series unbounded.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Iterator, MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cardsvc.errors import AuthenticationFailed
from verification.errors import REASONS as VERIFICATION_REASONS

if TYPE_CHECKING:
    from cardsvc.services.wallet import WalletSetup

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED_ROUTE = "<unmatched>"
LOCAL_ADDRESSES = frozenset({"127.0.0.1", "::1"})
LONG_RUNNING_PATHS = frozenset({"/v1/members/import", "/v1/identity/publish"})


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class JobProgressCollector(Collector):
    """Unfinished batch-issuance jobs and identity sync runs, read from the database at scrape time."""

    def __init__(self, session_factory: Callable[[], Callable[[], Session]]) -> None:
        # A callable returning the current factory: tests swap ``app.state.session_factory`` after start-up.
        self._session_factory = session_factory

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (GaugeMetricFamily("cardsvc_jobs", "Jobs by kind and status (batch issuance, identity sync)",
                                  labels=["kind", "status"]),
                GaugeMetricFamily("cardsvc_job_items", "Work items of unfinished jobs by kind and state",
                                  labels=["kind", "state"]),
                # No job label: ids never become label values. Running jobs add up; the time left is the longest.
                GaugeMetricFamily("cardsvc_batch_rate_cards_per_second",
                                  "Running batch-issuance jobs: cards per second, all jobs and workers together"),
                GaugeMetricFamily("cardsvc_batch_seconds_left",
                                  "Running batch-issuance jobs: seconds until the last one ends at their rates"))

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric names without reading the database (registering the collector calls this, not collect)."""
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from cardsvc.db.models import IdentitySyncItem, IdentitySyncRun, Job
        from cardsvc.services.card_batches import pace

        jobs, items, rates, left = self._families()
        try:
            with self._session_factory()() as session:
                paces = [pace(session, job) for job in session.scalars(
                    select(Job).where(Job.kind == "card_batch", Job.status == "running"))]
                rates.add_metric([], sum(p.rate or 0.0 for p in paces))
                left.add_metric([], max((p.seconds_left or 0.0 for p in paces), default=0.0))
                for kind, status, count in session.execute(
                        select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)):
                    jobs.add_metric([kind, status], count)
                totals = session.execute(
                    select(Job.kind, func.sum(Job.total), func.sum(Job.done), func.sum(Job.failed))
                    .where(Job.status.in_(("queued", "running"))).group_by(Job.kind)).all()
                for kind, total, done, failed in totals:
                    items.add_metric([kind, "total"], total or 0)
                    items.add_metric([kind, "done"], done or 0)
                    items.add_metric([kind, "failed"], failed or 0)
                for status, count in session.execute(
                        select(IdentitySyncRun.status, func.count()).group_by(IdentitySyncRun.status)):
                    jobs.add_metric(["identity_sync", status], count)
                for state, count in session.execute(
                        select(IdentitySyncItem.status, func.count())
                        .join(IdentitySyncRun, IdentitySyncRun.id == IdentitySyncItem.run_id)
                        .where(IdentitySyncRun.status.in_(("queued", "running")))
                        .group_by(IdentitySyncItem.status)):
                    items.add_metric(["identity_sync", state], count)
        except SQLAlchemyError:
            # The scrape still answers with the request metrics; /readyz reports the database.
            pass
        yield jobs
        yield items
        yield rates
        yield left


class WalletCollector(Collector):
    """Days left of the wallet's certificates, and wallet updates waiting, retried or given up (by channel)."""

    def __init__(self, session_factory: Callable[[], Callable[[], Session]],
                 setup: Callable[[], WalletSetup]) -> None:
        # Callables returning the current objects, as for the job collector: tests swap them after start-up.
        self._session_factory = session_factory
        self._setup = setup

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (GaugeMetricFamily("cardsvc_wallet_certificate_days_left", "Days until a wallet certificate expires "
                                  "(pass: the Pass Type ID certificate; wwdr: Apple's intermediate)",
                                  labels=["certificate"]),
                GaugeMetricFamily("cardsvc_wallet_updates", "Wallet pass updates not yet sent (pending, claimed) "
                                  "or given up (failed), by channel", labels=["channel", "status"]))

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric names without reading the database."""
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from cardsvc.db.models import WalletUpdate
        from cardsvc.services.wallet import certificate_expiry

        days, updates = self._families()
        for expiry in certificate_expiry(self._setup(), datetime.now(UTC)):
            days.add_metric([expiry.name], expiry.days_left)
        try:
            with self._session_factory()() as session:
                for channel, status, count in session.execute(
                        select(WalletUpdate.channel, WalletUpdate.status, func.count())
                        .where(WalletUpdate.status.in_(("pending", "claimed", "failed")))
                        .group_by(WalletUpdate.channel, WalletUpdate.status)):
                    updates.add_metric([channel, status], count)
        except SQLAlchemyError:
            pass
        yield days
        yield updates


class Metrics:
    """The service's metrics, registered in one application's registry."""

    def __init__(self, session_factory: Callable[[], Callable[[], Session]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("cardsvc_http_requests", "HTTP requests by method, route template and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("cardsvc_http_request_duration_seconds", "HTTP request latency by route template",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_progress = Gauge("cardsvc_http_requests_in_progress", "Requests being served: member-file imports "
                                 "and registry publications by path, the rest as 'other'", ["path"],
                                 registry=self.registry, multiprocess_mode="livesum")
        self.checkins = Counter("cardsvc_checkins", "Check-ins by result, reason and source",
                                ["result", "reason", "source"], registry=self.registry)
        self.verifications = Counter("cardsvc_verifications", "Credential verifications of scanned cards by "
                                     "reason ('valid' when the card itself is good)", ["reason"],
                                     registry=self.registry)
        self.rate_limited = Counter("cardsvc_rate_limited", "Requests refused by a rate limit", ["route"],
                                    registry=self.registry)
        self._session_factory = session_factory
        self._collectors: list[Collector] = []
        if session_factory is not None:
            self.registry.register(JobProgressCollector(session_factory))

    def add_collector(self, collector: Collector) -> None:
        """Expose another collector's metrics too (in multiprocess mode as well)."""
        self._collectors.append(collector)
        self.registry.register(collector)

    def observe_checkin(self, *, result: str, reason: str | None, source: str) -> None:
        """Count a check-in; scanned ones also count as a verification (manual ones verify no card)."""
        self.checkins.labels(result, reason or "", source).inc()
        if source != "manual":
            self.verifications.labels(reason if reason in VERIFICATION_REASONS else "valid").inc()

    def exposition(self) -> bytes:
        """The text format of every metric: this process's, or every worker's in multiprocess mode."""
        folder = multiprocess_dir()
        if folder is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
        if self._session_factory is not None:
            registry.register(JobProgressCollector(self._session_factory))
        for collector in self._collectors:
            registry.register(collector)
        return generate_latest(registry)


def route_template(scope: MutableMapping[str, Any]) -> str:
    """The matched route's path template; requests that matched nothing share one label."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class MetricsMiddleware:
    """Counts every HTTP request by route template and status and observes its latency."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        # The route is known only after routing, so the gauge names the long-running paths and lumps the rest.
        gauge = self.metrics.in_progress.labels(scope["path"] if scope["path"] in LONG_RUNNING_PATHS else "other")
        gauge.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            gauge.dec()
            route = route_template(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
            if status == 429:
                self.metrics.rate_limited.labels(route).inc()


def metrics_endpoint(request: Request) -> Response:
    """Serve the exposition to 127.0.0.1, or to a bearer of ``CARDSVC_METRICS_TOKEN``; 401 otherwise."""
    token: str | None = request.app.state.settings.metrics_token
    client = request.client.host if request.client else None
    if client not in LOCAL_ADDRESSES:
        supplied = request.headers.get("authorization", "")
        scheme, _, value = supplied.partition(" ")
        if not (token and scheme.lower() == "bearer" and hmac.compare_digest(value.encode(), token.encode())):
            raise AuthenticationFailed("metrics are served to 127.0.0.1 or with the metrics token",
                                       code="invalid_token")
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
