"""No ID number, phone number or birth date of the data ever reaches a log record (DOMAIN.md §8).

A representative flow runs through the API with every logger at DEBUG: a member-file import, members created,
cards issued, a check-in, an ID number revealed (pii), a look-up by ID number, a data export and an erasure. Every
record's message, arguments and ``extra`` fields are searched for the data's personal values, and so is the output
of the service's JSON formatter over the same records.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cardsvc.db.models import SigningKey
from cardsvc.logs import _RESERVED, JsonFormatter
from cardsvc.services import events, members, stations
from tests.conftest import SYSTEM, Tree, id_number_for, login

BIRTHS = [date(1975, 3, 8), date(1988, 10, 20), date(1992, 12, 1)]
PHONES = ["0912000111", "0987000222", "0356000333"]
OLD_ID = "012345678"


def _needles(id_numbers: list[str]) -> list[str]:
    """Every spelling of the data's personal values that a log line could carry."""
    found = [*id_numbers, OLD_ID]
    for phone in PHONES:
        found += [phone, "+84" + phone[1:], "84" + phone[1:]]
    for birth in BIRTHS:
        found += [birth.isoformat(), birth.strftime("%d/%m/%Y"), birth.strftime("%d-%m-%Y")]
    return found


def _record_texts(record: logging.LogRecord) -> list[str]:
    texts = [record.getMessage(), repr(record.args)]
    texts += [f"{key}={value!r}" for key, value in record.__dict__.items() if key not in _RESERVED]
    if record.exc_info:
        texts.append(logging.Formatter().formatException(record.exc_info))
    return texts


def test_flow_logs_no_personal_data(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                    signing_keys: dict[str, SigningKey], caplog: pytest.LogCaptureFixture) -> None:
    id_numbers = [id_number_for(birth) for birth in BIRTHS]
    caplog.set_level(logging.DEBUG)
    # The service's loggers and the libraries it logs through; SQLAlchemy keeps its own default (WARNING): its
    # INFO/DEBUG echo prints statement parameters and is a debugging tool, never switched on in production.
    names = ("cardsvc", "uvicorn", "httpx", "integrations", "issuance", "verification")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        admin = login(client, "t.admin")
        csv = "Họ và tên,Ngày sinh,Số CCCD,Số CMND,Điện thoại\n" + "".join(
            f"Nguyễn Thị {('Hoa', 'Huệ')[index]},{birth.strftime('%d/%m/%Y')},{id_numbers[index]},"
            f"{OLD_ID if index == 0 else ''},{PHONES[index]}\n"
            for index, birth in enumerate(BIRTHS[:2]))
        imported = client.post("/v1/members/import", headers=admin, data={
            "chapter_code": tree.branch_a.code, "dry_run": "false"},
            files={"file": ("danh-sach.csv", csv.encode(), "text/csv")})
        assert imported.status_code == 200, imported.text
        assert imported.json()["created"] == 2, imported.text
        # The same file again, with one row broken: problems are reported (and must be logged without values).
        broken = csv.replace(BIRTHS[1].strftime("%d/%m/%Y"), "31/02/1988")
        client.post("/v1/members/import", headers=admin, data={"chapter_code": tree.branch_a.code, "dry_run": "true"},
                    files={"file": ("danh-sach.csv", broken.encode(), "text/csv")})
        created = client.post("/v1/members", headers=admin, json={
            "chapter_id": tree.branch_a.id, "full_name": "Lê Thị Thu", "birth_date": BIRTHS[2].strftime("%d/%m/%Y"),
            "id_number": id_numbers[2], "phone": PHONES[2]})
        assert created.status_code == 201, created.text
        member_id = created.json()["id"]
        # A duplicate: the conflict names fields, never values.
        client.post("/v1/members", headers=admin, json={
            "chapter_id": tree.branch_a.id, "full_name": "Lê Thị Thu", "birth_date": BIRTHS[2].isoformat(),
            "id_number": id_numbers[2]})
        card = client.post(f"/v1/members/{member_id}/cards", headers=admin, json={})
        assert card.status_code in (200, 201), card.text
        batch = client.post(f"/v1/chapters/{tree.branch_a.id}/cards/batch", headers=admin, json={"subtree": True})
        assert batch.status_code in (200, 201, 202), batch.text
        credential = client.get(f"/v1/cards/{card.json()['card_id']}/credential", headers=admin).json()
        now = datetime.now(UTC)
        event = events.create_event(db, SYSTEM, events.EventSpec(chapter_id=tree.commune_a.id, title="Họp",
                                                                  venue="", starts_at=now,
                                                                  ends_at=now + timedelta(hours=2)))
        code = stations.register_station(db, SYSTEM, event.id, "Cửa").provisioning_code
        device = client.post("/v1/devices/provision", json={"code": code}).json()["device_token"]
        scan = client.post(f"/v1/events/{event.id}/checkins", headers={"Authorization": f"Bearer {device}"},
                           json={"source": "qr_scanner", "client_nonce": "nonce-logs-1",
                                 "payload": credential["qr_text"]})
        assert scan.json()["result"] == "ok"
        revealed = client.get(f"/v1/members/{member_id}?reveal=true", headers=admin)
        assert revealed.json()["id_number"] == id_numbers[2]
        found = client.post("/v1/members/lookup", headers=admin, json={"id_number": id_numbers[0]})
        assert len(found.json()) == 1
        client.post("/v1/members/lookup", headers=admin, json={"id_number": OLD_ID})
        assert client.get(f"/v1/members/{member_id}/export", headers=admin).status_code == 200
        members.change_status(db, SYSTEM, member_id, status="left", reason="chuyển đi", effective_on=None)
        assert client.post(f"/v1/members/{member_id}/erase", headers=admin).status_code == 200
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)

    records = caplog.records
    assert any(r.name == "cardsvc.access" for r in records)  # the flow was logged at all
    needles = _needles(id_numbers)
    formatter = JsonFormatter()
    leaks = []
    for record in records:
        for rendered in [*_record_texts(record), formatter.format(record)]:
            leaks += [f"{record.name}: {needle!r} in {rendered[:200]!r}" for needle in needles if needle in rendered]
    assert not leaks, "\n".join(leaks[:20])
    # Nothing shaped like an ID number of the data, in any spelling (e.g. grouped digits).
    digits = re.compile(r"\d[\d .-]{8,}\d")
    for record in records:
        for rendered in _record_texts(record):
            for match in digits.findall(rendered):
                assert re.sub(r"\D", "", match) not in id_numbers, f"{record.name}: {rendered[:200]}"


def test_database_errors_are_logged_without_values(engine: Engine) -> None:
    """A failed statement, logged with the traceback of a failed request, never carries its values: SQLAlchemy hides
    the parameters, and the JSON formatter withholds the driver's message (PostgreSQL quotes the failing row)."""
    with engine.connect() as conn, pytest.raises(DBAPIError) as error:
        conn.execute(text("INSERT INTO chapters (id, code) VALUES (:id, :code)"), {"id": 1, "code": PHONES[0]})
    assert "[SQL parameters hidden" in str(error.value)
    record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", None,
                               (type(error.value), error.value, error.value.__traceback__))
    rendered = JsonFormatter().format(record)
    assert PHONES[0] not in rendered
    assert "IntegrityError" in rendered and "sqlstate" in rendered
