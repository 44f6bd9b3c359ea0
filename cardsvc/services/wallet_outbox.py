"""The wallet outbox: a change to the card of a member who holds a wallet pass queues the pass's update.

Called inside the transaction that changes the card (issue, supersede, suspend, reinstate, revoke — whoever does
it), so the update commits or rolls back with the change and a crash never loses one; a worker sends it later
(:func:`cardsvc.services.wallet.process_updates`), so no request waits on Apple or Google. Only the services a pass
was handed out through (Apple, Google) get a row, and a change while a row is still pending adds nothing: the worker
sends the pass as it is when it runs.
"""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import WalletPass, WalletUpdate


def card_changed(session: Session, member_id: int) -> None:
    """Queue the update of the member's wallet pass, if she has one, in the caller's transaction."""
    issued = session.execute(
        select(WalletPass.id, WalletPass.apple_issued_at, WalletPass.google_issued_at)
        .where(WalletPass.member_id == member_id)
    ).first()
    if issued is None:
        return
    pass_id, apple, google = issued
    insert = postgresql_insert if session.connection().dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    for channel, issued_at in (("apple", apple), ("google", google)):
        if issued_at is not None:
            session.execute(
                insert(WalletUpdate)
                .values(pass_id=pass_id, channel=channel, status="pending", attempts=0, not_before=now,
                        created_at=now)
                .on_conflict_do_nothing(index_elements=["pass_id", "channel"],
                                        index_where=text("status = 'pending'"))
            )
