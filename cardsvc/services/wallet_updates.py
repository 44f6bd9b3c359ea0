"""Sending the wallet outbox: pushes to Apple's devices and object updates to Google, with retries.

Workers (a thread in each server process, :class:`WalletWorker`, and ``cardsvc wallet process``) claim due rows of
``wallet_updates`` for a lease with one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)``, so several
workers pass over each other's rows and a crashed worker's rows are taken over when the lease ends. Each row is
finished in its own transaction:

* Apple: the pass gets the next update tag (the ``wallet_tag`` counter row; its lock is held only for that short
  transaction, so tags follow commit order and a device asking "what changed since tag N" misses nothing) and a new
  ``Last-Modified``; then every registered device gets the empty push. A device token Apple calls gone loses its
  registration.
* Google: the member's object is replaced by the current one (suspended or revoked → ``INACTIVE``, expired →
  ``EXPIRED``); 404 means she never saved it, which is fine.

An erased member's pass (:func:`cardsvc.services.data_subject.erase_member` queues its last update: voided, under
the erased name) keeps its device registrations only until that update has had :data:`ERASED_DEVICE_GRACE` to reach
the devices (a device asks "what changed" by its registration after the push, then fetches the pass); then every
round's :func:`forget_erased_devices` deletes them, push tokens and all.

A retryable failure puts the row back with a pause that doubles from 30 seconds up to 6 hours (or the service's
``Retry-After``); after ``CARDSVC_WALLET_MAX_ATTEMPTS`` it is ``failed`` and logged. Development credentials never
talk to Apple or Google: their rows are finished as ``not_sent``.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import httpx
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cardsvc.db.base import utcnow
from cardsvc.db.models import Counter, Member, WalletPass, WalletRegistration, WalletUpdate
from cardsvc.services.data_subject import ERASABLE_STATUSES, is_erased
from cardsvc.services.wallet import WalletSetup, google_object, wallet_card
from cardsvc.settings import Settings
from integrations.wallet import (
    ApnsClient,
    GoogleWalletClient,
    PassPusher,
    PushResult,
    ServiceAccountTokens,
    WalletObjects,
    WalletRejected,
    WalletUnavailable,
    make_apns_http_client,
)
from verification.format import VIETNAM_TZ

log = logging.getLogger("cardsvc.wallet")
TAG_COUNTER = "wallet_tag"
FIRST_PAUSE_SECONDS = 30
MAX_PAUSE_SECONDS = 6 * 3600
LEASE = timedelta(minutes=5)
# How long an erased member's devices stay registered after her pass's last Apple update was sent (or given up).
ERASED_DEVICE_GRACE = timedelta(days=1)
BATCH = 20


@dataclass(frozen=True)
class WalletSenders:
    """Where updates go: Apple's push service and Google's Wallet API (None: not configured or development)."""

    pusher: PassPusher | None
    objects: WalletObjects | None


@dataclass
class SendSummary:
    """What one pass over the outbox did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed


def make_senders(setup: WalletSetup, settings: Settings) -> WalletSenders:
    """The real adapters for the configured services (none for development credentials)."""
    ca_file = str(settings.wallet_ca_file) if settings.wallet_ca_file else None
    trusted = ssl.create_default_context(cafile=ca_file)
    pusher: PassPusher | None = None
    apple = setup.apple
    if apple is not None and not apple.development:
        client_cert = None if apple.apns_auth is not None else settings.wallet_certificate_file
        http = make_apns_http_client(ca_file=ca_file, client_cert_file=str(client_cert) if client_cert else None,
                                     client_key_file=str(settings.wallet_key_file) if client_cert else None,
                                     client_key_password=settings.wallet_key_password)
        pusher = ApnsClient(http, topic=apple.pass_type_id, auth=apple.apns_auth, base_url=settings.wallet_apns_url)
    objects: WalletObjects | None = None
    google = setup.google
    if google is not None and not google.account.development:
        http = httpx.Client(timeout=10.0, verify=trusted)
        objects = GoogleWalletClient(http, ServiceAccountTokens(http, google.account),
                                     base_url=settings.wallet_google_api_url)
    return WalletSenders(pusher, objects)


def _claim(session: Session, worker: str, now: datetime, limit: int) -> list[int]:
    due = or_(and_(WalletUpdate.status == "pending", WalletUpdate.not_before <= now),
              and_(WalletUpdate.status == "claimed", WalletUpdate.not_before <= now))
    claimable = (select(WalletUpdate.id).where(due).order_by(WalletUpdate.id).limit(limit)
                 .with_for_update(skip_locked=True))
    claimed = list(session.scalars(
        update(WalletUpdate).where(WalletUpdate.id.in_(claimable.scalar_subquery()))
        .values(status="claimed", claimed_by=worker, not_before=now + LEASE, attempts=WalletUpdate.attempts + 1)
        .returning(WalletUpdate.id).execution_options(synchronize_session=False)
    ))
    session.commit()
    return sorted(claimed)


def _next_tag(session: Session) -> int:
    tag: int = session.execute(
        update(Counter).where(Counter.name == TAG_COUNTER).values(value=Counter.value + 1).returning(Counter.value)
    ).scalar_one()
    return tag


def _send_apple(session: Session, pusher: PassPusher, item: WalletUpdate, now: datetime) -> None:
    wallet_pass = session.get_one(WalletPass, item.pass_id)
    wallet_pass.update_tag = _next_tag(session)
    # Last-Modified has whole seconds: it moves on by at least one, or a device that fetched the pass in the same
    # second would be told "304 not modified".
    wallet_pass.modified_at = max(now, wallet_pass.modified_at.replace(microsecond=0) + timedelta(seconds=1))
    session.commit()
    registrations = session.scalars(select(WalletRegistration).where(WalletRegistration.pass_id == item.pass_id)
                                    .order_by(WalletRegistration.id)).all()
    gone = [r.id for r in registrations if pusher.push(r.push_token) is PushResult.GONE]
    if gone:
        session.execute(delete(WalletRegistration).where(WalletRegistration.id.in_(gone)))
        log.info("wallet registrations dropped: device tokens gone", extra={"count": len(gone)})


def _send_google(session: Session, setup: WalletSetup, objects: WalletObjects, item: WalletUpdate,
                 today: date) -> str | None:
    wallet_pass = session.get_one(WalletPass, item.pass_id)
    assert setup.google is not None
    body = google_object(setup, setup.google, wallet_card(session, setup, wallet_pass, today))
    return None if objects.update_object(setup.google.object_id(wallet_pass.serial), body) else "not_saved"


def _pause(attempts: int, retry_after: float | None) -> timedelta:
    seconds = min(FIRST_PAUSE_SECONDS * 2 ** max(attempts - 1, 0), MAX_PAUSE_SECONDS)
    return timedelta(seconds=max(seconds, min(retry_after or 0, MAX_PAUSE_SECONDS)))


def _finish(session: Session, item_id: int, status: str, error: str | None, now: datetime) -> None:
    session.execute(update(WalletUpdate).where(WalletUpdate.id == item_id)
                    .values(status=status, error=error, finished_at=now, claimed_by=None)
                    .execution_options(synchronize_session=False))
    session.commit()


def _retry_later(session: Session, item: WalletUpdate, error: str, pause: timedelta, now: datetime) -> None:
    try:
        session.execute(update(WalletUpdate).where(WalletUpdate.id == item.id)
                        .values(status="pending", error=error, not_before=now + pause, claimed_by=None)
                        .execution_options(synchronize_session=False))
        session.commit()
    except IntegrityError:
        # A later change queued its own row, which sends the pass as it is then: this one has nothing left to do.
        session.rollback()
        _finish(session, item.id, "done", "superseded", now)


def _process_one(session: Session, setup: WalletSetup, senders: WalletSenders, item_id: int, *,
                 max_attempts: int, now: datetime, today: date, summary: SendSummary) -> None:
    item = session.get_one(WalletUpdate, item_id)
    try:
        if item.channel == "apple":
            if senders.pusher is None:
                _finish(session, item.id, "done", "not_sent", now)
                summary.sent += 1
                return
            _send_apple(session, senders.pusher, item, now)
            error = None
        else:
            if senders.objects is None or setup.google is None:
                _finish(session, item.id, "done", "not_sent", now)
                summary.sent += 1
                return
            error = _send_google(session, setup, senders.objects, item, today)
    except WalletUnavailable as exc:
        session.rollback()
        item = session.get_one(WalletUpdate, item_id)
        if item.attempts >= max_attempts:
            _finish(session, item.id, "failed", exc.reason[:100], now)
            log.error("wallet update given up", extra={"channel": item.channel, "reason": exc.reason,
                                                        "attempts": item.attempts})
            summary.failed += 1
        else:
            _retry_later(session, item, exc.reason[:100], _pause(item.attempts, exc.retry_after), now)
            log.warning("wallet update will be retried", extra={"channel": item.channel, "reason": exc.reason,
                                                                 "attempts": item.attempts})
            summary.retried += 1
        return
    except WalletRejected as exc:
        session.rollback()
        _finish(session, item_id, "failed", exc.reason[:100], now)
        log.error("wallet update refused", extra={"channel": item.channel, "reason": exc.reason})
        summary.failed += 1
        return
    _finish(session, item.id, "done", error, now)
    summary.sent += 1


def forget_erased_devices(session: Session, now: datetime) -> int:
    """Delete the device registrations of erased members' passes once the pass's last Apple update is
    :data:`ERASED_DEVICE_GRACE` old (none pending); returns how many. Commits."""
    candidates = session.scalars(
        select(Member).join(WalletPass, WalletPass.member_id == Member.id)
        .where(WalletPass.id.in_(select(WalletRegistration.pass_id)), Member.status.in_(ERASABLE_STATUSES),
               Member.id_number_index.is_(None))
    ).unique().all()
    erased = [member.id for member in candidates if is_erased(member)]
    if not erased:
        return 0
    waiting = select(WalletUpdate.pass_id).where(
        WalletUpdate.channel == "apple",
        or_(WalletUpdate.status.in_(("pending", "claimed")), WalletUpdate.finished_at > now - ERASED_DEVICE_GRACE))
    passes = select(WalletPass.id).where(WalletPass.member_id.in_(erased), WalletPass.id.not_in(waiting))
    result = session.execute(delete(WalletRegistration).where(WalletRegistration.pass_id.in_(passes))
                             .execution_options(synchronize_session=False))
    session.commit()
    count: int = getattr(result, "rowcount", 0) or 0
    if count:
        log.info("wallet registrations dropped: member erased", extra={"count": count})
    return count


def process_updates(session_factory: Callable[[], Session], setup: WalletSetup, senders: WalletSenders, *,
                    worker: str, max_attempts: int, now: Callable[[], datetime] = utcnow,
                    limit: int | None = None) -> SendSummary:
    """Send every due update (at most ``limit``), claiming a few at a time; returns what was done."""
    summary = SendSummary()
    with session_factory() as session:
        forget_erased_devices(session, now())
        while limit is None or summary.handled < limit:
            moment = now()
            claimed = _claim(session, worker, moment, BATCH if limit is None else min(BATCH, limit - summary.handled))
            if not claimed:
                break
            today = moment.astimezone(VIETNAM_TZ).date()
            for item_id in claimed:
                _process_one(session, setup, senders, item_id, max_attempts=max_attempts, now=moment, today=today,
                             summary=summary)
    return summary


class WalletWorker:
    """A daemon thread of a server process that sends the wallet outbox every ``poll_seconds``."""

    def __init__(self, session_factory: sessionmaker[Session], setup: WalletSetup, senders: WalletSenders, *,
                 poll_seconds: float, max_attempts: int) -> None:
        self._session_factory = session_factory
        self._setup = setup
        self._senders = senders
        self._poll_seconds = poll_seconds
        self._max_attempts = max_attempts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cardsvc-wallet", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop after the update in hand, and wait for it."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        worker = f"server-{os.getpid()}"
        while not self._stop.is_set():
            try:
                process_updates(self._session_factory, self._setup, self._senders, worker=worker,
                                max_attempts=self._max_attempts)
            except SQLAlchemyError as exc:
                # The database is away: the rows wait where they are, and the next round tries again.
                log.warning("wallet worker: database error", extra={"error": type(exc).__name__})
            self._stop.wait(self._poll_seconds)


def start_worker(setup: WalletSetup, session_factory: sessionmaker[Session], settings: Settings) -> WalletWorker | None:
    """Start a server process's wallet worker when Apple or Google Wallet is configured."""
    if setup.apple is None and setup.google is None:
        return None
    worker = WalletWorker(session_factory, setup, make_senders(setup, settings),
                          poll_seconds=settings.wallet_poll_seconds, max_attempts=settings.wallet_max_attempts)
    worker.start()
    return worker
