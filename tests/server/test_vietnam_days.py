"""Every calendar day of the service is a day in Vietnam (UTC+7), whatever the server's time zone. The clock is frozen
just after midnight and just before 07:00 in Hà Nội, when the UTC date is still the day before, and late in the
evening, when both agree; the server's own zone is UTC or one west of Greenwich."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.days import vietnam_day, vietnam_today
from cardsvc.db.models import Card, Member
from cardsvc.security import PiiCipher
from cardsvc.services import members
from cardsvc.services.cards import add_years
from cardsvc.services.reports import to_csv, to_xlsx
from tests.conftest import SYSTEM, Tree, id_number_for, login, make_member
from tests.server.importing.builders import csv_bytes, people, table
from verification.format import day_start, parse_credential

# (the frozen instant, the day in Vietnam at that instant)
MOMENTS = {
    "00:30": (datetime(2025, 6, 14, 17, 30, tzinfo=UTC), date(2025, 6, 15)),
    "06:59": (datetime(2025, 6, 14, 23, 59, tzinfo=UTC), date(2025, 6, 15)),
    "23:59": (datetime(2025, 6, 14, 16, 59, 59, tzinfo=UTC), date(2025, 6, 14)),
}
SERVER_ZONES = ("UTC", "America/Los_Angeles")


@pytest.fixture(params=[(moment, zone) for moment in MOMENTS for zone in SERVER_ZONES],
                ids=lambda param: f"{param[0]}-in-Vietnam-server-in-{param[1]}")
def vietnam_day_now(request: pytest.FixtureRequest) -> Iterator[date]:
    """Freezes the clock (and the server's local zone) at the moment; yields that moment's day in Vietnam."""
    moment, zone = request.param
    instant, day = MOMENTS[moment]
    with time_machine.travel(instant.astimezone(ZoneInfo(zone)), tick=False):
        yield day


def test_today_and_the_day_of_an_instant(vietnam_day_now: date) -> None:
    assert vietnam_today() == vietnam_day_now
    assert vietnam_day(datetime.now(UTC)) == vietnam_day_now
    with pytest.raises(ValueError, match="naive"):
        vietnam_day(datetime(2025, 6, 14, 17, 30))


@pytest.mark.usefixtures("signing_keys")
def test_a_card_is_issued_and_expires_on_days_in_vietnam(client: TestClient, tree: Tree, db: Session,
                                                         cipher: PiiCipher, vietnam_day_now: date) -> None:
    member = make_member(db, cipher, tree.branch_a)
    headers = login(client, "t.officer.a")
    card = client.post(f"/v1/members/{member.id}/cards", json={}, headers=headers)
    assert card.status_code == 201, card.text
    expires = add_years(vietnam_day_now, 5) - timedelta(days=1)
    assert (card.json()["issued_on"], card.json()["expires_on"]) == (str(vietnam_day_now), str(expires))
    credential = bytes.fromhex(client.get(f"/v1/cards/{card.json()['card_id']}/credential",
                                          headers=headers).json()["credential_hex"])
    claims = parse_credential(credential).claims
    assert (claims.issued_on, claims.expires_on) == (vietnam_day_now, expires)
    assert day_start(claims.issued_on) <= datetime.now(UTC).timestamp() < day_start(claims.issued_on) + 86400

    renewed = client.post(f"/v1/cards/{card.json()['card_id']}/renew", headers=headers)
    assert renewed.json()["issued_on"] == str(vietnam_day_now)


@pytest.mark.usefixtures("signing_keys")
def test_a_batch_issues_on_the_day_in_vietnam(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher,
                                              vietnam_day_now: date) -> None:
    make_member(db, cipher, tree.branch_a)
    headers = login(client, "t.officer.a")
    job = client.post(f"/v1/chapters/{tree.branch_a.id}/cards/batch", json={}, headers=headers)
    assert client.get(f"/v1/jobs/{job.json()['id']}", headers=headers).json()["status"] == "done"
    issued = db.scalars(select(Card.issued_on)).all()
    assert issued == [vietnam_day_now]


def test_today_in_vietnam_is_not_in_the_future(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher,
                                               vietnam_day_now: date) -> None:
    headers = login(client, "t.officer.a")
    body = {"chapter_id": tree.branch_a.id, "full_name": "Nguyễn Thị Lan", "birth_date": "12/04/1990",
            "id_number": id_number_for(date(1990, 4, 12)), "join_date": vietnam_day_now.strftime("%d/%m/%Y")}
    created = client.post("/v1/members", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert db.get_one(Member, created.json()["id"]).status_changed_on == vietnam_day_now

    member = make_member(db, cipher, tree.branch_a, join_date=None)
    assert member.status_changed_on == vietnam_day_now
    suspended = client.post(f"/v1/members/{member.id}/status", headers=headers,
                            json={"status": "suspended", "reason": "chờ xác minh",
                                  "effective_on": vietnam_day_now.isoformat()})
    assert suspended.status_code == 200, suspended.text
    tomorrow = client.post(f"/v1/members/{member.id}/status", headers=headers,
                           json={"status": "active", "effective_on": (vietnam_day_now + timedelta(1)).isoformat()})
    assert tomorrow.status_code == 422
    db.refresh(member)
    members.change_status(db, SYSTEM, member.id, status="active", reason=None, effective_on=None)
    assert member.status_changed_on == vietnam_day_now


def test_an_import_records_the_day_in_vietnam(client: TestClient, tree: Tree, db: Session,
                                              vietnam_day_now: date) -> None:
    person = people(1)[0]
    rows = table([person])
    rows[0].append("Ngày vào hội")
    rows[1].append(vietnam_day_now.strftime("%d/%m/%Y"))
    response = client.post("/v1/members/import", headers=login(client, "t.officer.a"),
                           files={"file": ("danh-sach.csv", csv_bytes(rows))},
                           data={"dry_run": "false", "chapter_code": tree.branch_a.code})
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1, response.json()["problems"]
    stored = db.scalars(select(Member).where(Member.join_date.is_not(None))).one()
    assert (stored.join_date, stored.status_changed_on) == (vietnam_day_now, vietnam_day_now)


def test_report_times_fall_on_days_in_vietnam(vietnam_day_now: date) -> None:
    scanned = datetime.now(UTC)
    text = to_csv([(scanned,)], ("Giờ vào",)).decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(text)))[1][0].startswith(vietnam_day_now.strftime("%d/%m/%Y "))
    sheet = load_workbook(io.BytesIO(to_xlsx([(scanned,)], ("Giờ vào",), title="Điểm danh"))).active
    assert sheet is not None
    assert sheet.cell(row=2, column=1).value.date() == vietnam_day_now
