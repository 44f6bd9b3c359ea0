"""Calendar days. Every day the service records, compares or shows (a card's issue and expiry dates, status and
join dates, the "today" that refuses future dates, event and report days) is a day in Vietnam (Asia/Ho_Chi_Minh,
UTC+7 all year), whatever time zone the server runs in: a card issued at 06:30 in Hà Nội is issued that day, not
the day before as the UTC date would have it. Instants stay in UTC (``cardsvc.db.base.utcnow``)."""

from __future__ import annotations

from datetime import date, datetime

from verification.format import VIETNAM_TZ

__all__ = ["VIETNAM_TZ", "vietnam_day", "vietnam_today"]


def vietnam_day(instant: datetime) -> date:
    """The day in Vietnam holding ``instant``.

    Raises:
        ValueError: ``instant`` has no time zone (it would be read in the server's local zone).
    """
    if instant.tzinfo is None:
        raise ValueError("a naive datetime has no day in Vietnam")
    return instant.astimezone(VIETNAM_TZ).date()


def vietnam_today() -> date:
    """Today in Vietnam."""
    return datetime.now(VIETNAM_TZ).date()
