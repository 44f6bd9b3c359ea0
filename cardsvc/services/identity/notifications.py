"""The registry's change feed (deaths, changes of name or ID number): each notification about a consenting member
opens an officer review (:mod:`.reviews`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cardsvc.db.base import utcnow
from cardsvc.db.models import IdentityReview, Member, RegistryCursor
from cardsvc.security import PiiCipher
from cardsvc.services import audit
from cardsvc.services.consents import has_active_consent
from cardsvc.services.context import Actor
from cardsvc.services.identity.gateway import RegistryGateway
from cardsvc.services.identity.reviews import NEW_ID_NUMBER_FIELD, open_review
from cardsvc.services.identity.scope import IDENTITY_CONSENT
from integrations.population import Notification, NotificationKind, Purpose

NOTIFICATIONS_CURSOR = "notifications"


@dataclass
class NotificationSummary:
    received: int = 0
    reviews_opened: int = 0
    ignored: int = 0
    duplicates: int = 0
    cursor: str | None = None


def _member_by_number(session: Session, cipher: PiiCipher, id_number: str) -> Member | None:
    column, field_name = (Member.old_id_number_index, "old_id_number") if len(id_number) == 9 \
        else (Member.id_number_index, "id_number")
    return session.scalar(select(Member).where(column == cipher.blind_index(field_name, id_number)))


def _notification_review(session: Session, cipher: PiiCipher, actor: Actor, notification: Notification,
                         summary: NotificationSummary) -> None:
    if session.scalar(select(IdentityReview.id).where(
            IdentityReview.notification_id == notification.notification_id)) is not None:
        summary.duplicates += 1
        return
    member = _member_by_number(session, cipher, notification.id_number)
    # The feed covers every citizen: only our members who consented to identity checks are looked at.
    if member is None or not has_active_consent(session, member.id, IDENTITY_CONSENT):
        summary.ignored += 1
        return
    new_number: bytes | None = None
    if notification.kind is NotificationKind.DEATH:
        kind, fields, values = "deceased", ["status"], {"death_date": notification.occurred_on.isoformat()}
    elif notification.kind is NotificationKind.NAME_CHANGE and notification.new_name is not None:
        name = notification.new_name
        kind, fields = "name_change", ["full_name"]
        values = {"family": name.family, "middle": name.middle, "given": name.given, "full_name": name.full,
                  "changed_on": notification.occurred_on.isoformat()}
    elif notification.kind is NotificationKind.ID_NUMBER_CHANGE and notification.new_id_number:
        kind, fields, values = "id_number_change", ["id_number"], {"changed_on": notification.occurred_on.isoformat()}
        new_number = cipher.encrypt(NEW_ID_NUMBER_FIELD, notification.new_id_number)
    else:
        summary.ignored += 1
        return
    open_review(session, actor, member, source="notification", kind=kind, differing=fields, values=values,
                notification_id=notification.notification_id, new_id_number=new_number)
    summary.reviews_opened += 1


def pull_notifications(session_factory: sessionmaker[Session] | Callable[[], Session], gateway: RegistryGateway,
                       cipher: PiiCipher, actor: Actor, *, page_size: int = 100, max_pages: int = 1000
                       ) -> NotificationSummary:
    """Read the registry's change feed from the stored cursor; each page's reviews and the new cursor are committed
    together, so a crash reads at most one page again (and duplicates are recognised by notification id). No
    transaction is open while a page is asked for.

    Raises:
        RegistryError: the registry could not serve a page (the pages before it are kept).
    """
    actor.require_admin()
    with session_factory() as session:
        cursor = session.scalar(select(RegistryCursor.cursor).where(RegistryCursor.name == NOTIFICATIONS_CURSOR))
    summary = NotificationSummary(cursor=cursor)
    for _page in range(max_pages):
        context = gateway.context(actor, Purpose.CHANGE_MONITORING)
        page, next_cursor = gateway.call(partial(gateway.registry.notifications, context, cursor, page_size))
        with session_factory() as session:
            audit.record(session, actor, "identity.notifications_pull", target_type="registry_feed",
                         target_id=NOTIFICATIONS_CURSOR, chapter_path=None,
                         details={"purpose": Purpose.CHANGE_MONITORING.value, "received": len(page),
                                  "registry_request_id": context.request_id})
            summary.received += len(page)
            for notification in page:
                _notification_review(session, cipher, actor, notification, summary)
            stored = session.get(RegistryCursor, NOTIFICATIONS_CURSOR)
            if stored is None:
                stored = RegistryCursor(name=NOTIFICATIONS_CURSOR)
                session.add(stored)
            stored.cursor, stored.updated_at = next_cursor, utcnow()
            session.commit()
        summary.cursor = next_cursor
        if not page or next_cursor == cursor:
            break
        cursor = next_cursor
    return summary
