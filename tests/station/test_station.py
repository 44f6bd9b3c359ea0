"""The station's decision path with ListSource and a fake server (httpx.MockTransport): dedupe, the online/offline
state machine, the durable queue and its uploader, the offline rules, set-up, and the display."""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest

from station.client import CheckinAnswer, LinkState, StationClient
from station.dedupe import Deduplicator
from station.display import Outcome, StationStatus, TerminalDisplay
from station.errors import SetupError
from station.inputs import ListSource, ReadFailure, Scan
from station.loop import Station, decide_offline
from station.setup import parse_setup_text, provision_station
from station.store import StationStore
from tests.station.conftest import EVENT_ID, ISSUER, STATION_ID, FakeClock, FakeServer, World
from verification.entry import PriorEntry
from verification.event_bundle import verify_event_bundle
from verification.trust import TrustAnchor

MakeStore = Callable[..., StationStore]


class RecordingDisplay:
    """A Display that keeps what was shown, and checks the scan was queued before it was shown."""

    def __init__(self, store: StationStore) -> None:
        self.store = store
        self.shown: list[Outcome] = []
        self.statuses: list[StationStatus] = []
        self.notices: list[list[str]] = []

    def show(self, outcome: Outcome, status: StationStatus) -> None:
        if outcome.nonce is not None:
            assert self.store.scan(outcome.nonce) is not None, "shown before it was queued"
        self.shown.append(outcome)

    def ready(self, status: StationStatus) -> None:
        self.statuses.append(status)

    def notice(self, lines: list[str], details: list[str], status: StationStatus) -> None:
        self.notices.append(lines)


def make_station(store: StationStore, server: FakeServer, clock: FakeClock, world: World, *,
                 max_failures: int = 2) -> tuple[Station, RecordingDisplay]:
    link = LinkState(max_failures=max_failures, slow_seconds=2.0, max_slow=2, probe_seconds=5.0, clock=clock)
    client = StationClient(ISSUER, token="cdv_test", http=httpx.Client(transport=httpx.MockTransport(server.handler)),
                           link=link, clock=clock)
    display = RecordingDisplay(store)
    counter = itertools.count(1)
    station = Station(store, client=client, display=display, clock=lambda: world.now,
                      dedupe=Deduplicator(clock=clock), nonce_factory=lambda sid: f"st{sid}-n{next(counter):04d}")
    return station, display


def feed(station: Station, event: Scan | ReadFailure) -> Outcome | None:
    """One scan through the decision path, shown as ``Station.run`` shows it."""
    outcome = station.handle(event)
    if outcome is not None:
        station.display.show(outcome, station.status())
    return outcome


def scan(world: World, payload: str | bytes, *, after: timedelta = timedelta(0)) -> Scan:
    return Scan("nfc" if isinstance(payload, bytes) else "qr_scanner", payload, world.now + after)


# -- dedupe and the state machine -------------------------------------------------------------------------------------

def test_dedupe_drops_the_same_payload_within_a_second_only(clock: FakeClock) -> None:
    dedupe = Deduplicator(clock=clock)
    assert not dedupe.is_duplicate("84010001")
    assert dedupe.is_duplicate("84010001\r\n")  # the same scan with the scanner's suffix
    assert not dedupe.is_duplicate("84010002")
    assert not dedupe.is_duplicate(b"84010001")  # tag bytes never equal a text scan
    clock.advance(0.99)
    assert dedupe.is_duplicate("84010001")
    clock.advance(0.02)
    assert not dedupe.is_duplicate("84010001")


def test_link_goes_offline_after_failures_or_slow_answers_and_comes_back(clock: FakeClock) -> None:
    link = LinkState(max_failures=3, slow_seconds=2.0, max_slow=2, probe_seconds=5.0, clock=clock)
    link.record_failure()
    link.record_failure()
    assert link.online
    link.record_failure()
    assert not link.online and not link.probe_due()
    clock.advance(5)
    assert link.probe_due()
    link.record_success(0.1)
    assert link.online and not link.probe_due()
    link.record_success(2.5)
    assert link.online
    link.record_success(3.0)
    assert not link.online  # two slow answers in a row
    link.record_success(2.1)
    assert not link.online  # a slow success does not bring it back
    link.record_success(0.2)
    assert link.online


def test_slow_server_switches_the_station_offline(world: World, server: FakeServer, clock: FakeClock,
                                                  provisioned_store: MakeStore) -> None:
    station, display = make_station(provisioned_store(), server, clock, world)
    server.mode = "slow"
    feed(station, scan(world, world.cards["lan"].qr))
    clock.advance(2)
    feed(station, scan(world, world.cards["hoa"].qr))
    assert not station.online
    assert [o.offline for o in display.shown] == [False, False]  # answered, but too slowly twice
    clock.advance(2)
    outcome = feed(station, scan(world, world.cards["revoked"].qr))
    assert outcome is not None and outcome.offline and outcome.reason == "revoked"
    assert len(server.posts) == 2  # the third scan did not wait for the server


# -- online and offline -----------------------------------------------------------------------------------------------

def test_online_check_in_shows_the_servers_answer_and_marks_the_row_uploaded(
        world: World, server: FakeServer, clock: FakeClock, provisioned_store: MakeStore) -> None:
    store = provisioned_store()
    station, display = make_station(store, server, clock, world)
    source = ListSource([scan(world, world.cards["lan"].qr + "\r\n"), scan(world, world.cards["lan"].qr),
                         scan(world, world.cards["lan"].credential)])
    for event in source.events():
        feed(station, event)
    lan = display.shown
    assert len(lan) == 2  # the second (identical) scan was a duplicate and was dropped
    assert lan[0].ok and not lan[0].offline and lan[0].name == "Nguyễn Thị Lan"
    assert (lan[1].ok, lan[1].reason) == (False, "already_checked_in")  # the tag: same member, a second entry
    rows = store.all_scans()
    assert [r.source for r in rows] == ["qr_scanner", "nfc"]
    assert all(r.uploaded_at is not None and r.local_result is None for r in rows)
    assert store.pending_count() == 0


def test_offline_decisions_queue_and_upload_in_order_when_the_server_is_back(
        world: World, server: FakeServer, clock: FakeClock, provisioned_store: MakeStore) -> None:
    store = provisioned_store()
    station, display = make_station(store, server, clock, world)
    server.mode = "down"
    payloads = [world.cards["lan"].qr, world.cards["revoked"].qr, world.cards["outsider"].qr, "84019999",
                world.cards["hoa"].credential]
    for payload in payloads:
        feed(station, scan(world, payload))
    clock.advance(1.5)
    feed(station, scan(world, world.cards["lan"].qr))  # again, after the dedupe window
    got = [(o.ok, o.reason, o.offline) for o in display.shown]
    assert got == [(True, None, True), (False, "revoked", True), (False, "not_eligible", True),
                   (False, "malformed", True), (True, None, True), (False, "already_checked_in", True)]
    assert display.shown[0].name == "Nguyễn Thị Lan" and display.shown[4].name == "Trần Thị Hoa"
    assert not station.online and store.pending_count() == 6
    assert len(server.posts) == 0 and station.upload_pending() == 0  # still down: nothing marked

    server.mode = "up"
    assert station.upload_pending() == 6
    nonces = [o.nonce for o in display.shown]
    assert server.posts == nonces  # oldest first
    assert store.pending_count() == 0 and set(server.records) == set(nonces)
    assert station.online
    rows = {r.nonce: r for r in store.all_scans()}
    assert rows[nonces[0]].server_result == "ok" and rows[nonces[0]].local_result == "ok"


def test_a_lost_answer_is_retried_under_the_same_nonce_and_counted_once(
        world: World, server: FakeServer, clock: FakeClock, provisioned_store: MakeStore) -> None:
    store = provisioned_store()
    station, _ = make_station(store, server, clock, world)
    server.mode = "lost_answer"
    outcome = feed(station, scan(world, world.cards["lan"].qr))
    assert outcome is not None and outcome.ok and outcome.offline  # decided locally after the timeout
    assert list(server.records) == [outcome.nonce]  # ... but the server had recorded it
    assert store.pending_count() == 1
    server.mode = "up"
    assert station.upload_pending() == 1
    assert server.posts == [outcome.nonce, outcome.nonce]
    assert len(server.records) == 1 and len(server.entered) == 1
    row = store.scan(outcome.nonce)
    assert row is not None and row.server_result == "ok" and store.conflicts() == 0


def test_offline_acceptance_refused_by_the_server_is_a_conflict(
        world: World, server: FakeServer, clock: FakeClock, provisioned_store: MakeStore) -> None:
    store = provisioned_store()
    station, _ = make_station(store, server, clock, world)
    server.entered[world.cards["hoa"].member_number] = "another-door"
    server.mode = "down"
    feed(station, scan(world, world.cards["hoa"].qr))
    server.mode = "up"
    station.upload_pending()
    assert store.conflicts() == 1 and station.status().conflicts == 1


def test_definitive_refusals_leave_the_queue_but_a_refused_device_keeps_its_scans(
        world: World, server: FakeServer, clock: FakeClock, provisioned_store: MakeStore) -> None:
    store = provisioned_store()
    station, _ = make_station(store, server, clock, world)
    server.mode = "down"
    feed(station, scan(world, world.cards["lan"].qr))
    server.mode, server.refuse_status, server.refuse_code = "refuse", 401, "device_revoked"
    assert station.upload_pending() == 0 and store.pending_count() == 1
    server.refuse_status, server.refuse_code = 409, "nonce_reused"
    assert station.upload_pending() == 1 and store.pending_count() == 0
    row = store.all_scans()[0]
    assert (row.server_result, row.server_reason) == ("error", "nonce_reused")


def test_every_scan_is_durable_in_wal_with_full_sync(tmp_path: pytest.TempPathFactory,
                                                     world: World) -> None:
    store = StationStore(tmp_path / "station.sqlite3")  # type: ignore[operator]
    assert store.pragma("journal_mode") == "wal"
    assert store.pragma("synchronous") == 2  # FULL


def test_run_loop_funnels_every_source_through_one_path(
        world: World, server: FakeServer, clock: FakeClock, provisioned_store: MakeStore) -> None:
    store = provisioned_store()
    station, display = make_station(store, server, clock, world)
    sources = [ListSource([scan(world, world.cards["lan"].qr)], name="scanner"),
               ListSource([scan(world, world.cards["hoa"].credential),
                           ReadFailure("nfc", "the tag left the reader", world.now)], name="nfc")]
    station.run(sources, idle_seconds=0.1, upload_interval=0.05, final_drain_seconds=1)
    assert sorted((o.ok, o.reason) for o in display.shown) == [(False, "read_failed"), (True, None), (True, None)]
    assert store.pending_count() == 0


# -- the offline rules ------------------------------------------------------------------------------------------------

def _bundle(world: World, **rules: object) -> object:
    return verify_event_bundle(world.bundle(**rules), TrustAnchor.from_jwk(world.anchor_jwk), world.now)  # type: ignore[arg-type]


def test_offline_rules_follow_the_event(world: World) -> None:
    qr = world.cards["lan"].qr
    now = world.now
    earlier = [PriorEntry(now - timedelta(minutes=5), "in")]
    entry = _bundle(world)
    assert decide_offline(qr, entry, lambda _number: [], now).direction == "in"  # type: ignore[arg-type]
    refused = decide_offline(qr, entry, lambda _number: earlier, now)  # type: ignore[arg-type]
    assert refused.reason == "already_checked_in" and refused.first_at == earlier[0].at
    exits = _bundle(world, mode="entry_exit")
    assert decide_offline(qr, exits, lambda _number: earlier, now).direction == "out"  # type: ignore[arg-type]
    back = [*earlier, PriorEntry(now - timedelta(minutes=1), "out")]
    assert decide_offline(qr, exits, lambda _number: back, now).reason == "already_checked_in"  # type: ignore[arg-type]
    assert decide_offline(qr, _bundle(world, mode="entry_exit", allow_reentry=True),  # type: ignore[arg-type]
                          lambda _number: back, now).direction == "in"
    closed = _bundle(world, status="closed")
    assert decide_offline(qr, closed, lambda _number: [], now).reason == "event_closed"  # type: ignore[arg-type]
    late = _bundle(world, closes=now - timedelta(minutes=1))
    assert decide_offline(qr, late, lambda _number: [], now).reason == "outside_window"  # type: ignore[arg-type]
    assert decide_offline(qr, None, lambda _number: [], now).reason == "no_bundle"
    expired = now + timedelta(days=3)
    assert decide_offline(qr, entry, lambda _number: [], expired).reason == "no_bundle"  # type: ignore[arg-type]


def test_bundle_check_ins_count_offline(world: World, server: FakeServer, clock: FakeClock,
                                        provisioned_store: MakeStore) -> None:
    lan = world.cards["lan"]
    token = world.bundle(checkins=[{"member_number": lan.member_number, "seq": 1, "direction": "in",
                                    "at": world.now.isoformat(), "station_id": 9}])
    station, display = make_station(provisioned_store(token), server, clock, world)
    server.mode = "down"
    feed(station, scan(world, lan.qr))
    assert (display.shown[0].reason, display.shown[0].offline) == ("already_checked_in", True)


def test_a_station_restarted_offline_reverifies_its_stored_bundle(
        world: World, server: FakeServer, clock: FakeClock, provisioned_store: MakeStore) -> None:
    store = provisioned_store(world.bundle() + "x")  # tampered: refused, nothing accepted
    station, _ = make_station(store, server, clock, world)
    assert station.bundle is None and station.problem
    server.mode = "down"
    outcome = feed(station, scan(world, world.cards["lan"].qr))
    assert outcome is not None and outcome.reason == "no_bundle"
    server.mode = "up"
    assert station.refresh_bundle() and station.bundle is not None and store.bundle_token() == server.bundle_token


# -- set-up -----------------------------------------------------------------------------------------------------------

def test_setup_text_is_the_url_or_the_bare_code() -> None:
    assert parse_setup_text("https://cards.example.vn/checkin#setup=abc-DEF_1", None) == (
        "https://cards.example.vn", "abc-DEF_1")
    assert parse_setup_text(" http://10.0.0.2:8000/base/checkin#setup=xyz\n", None) == (
        "http://10.0.0.2:8000/base", "xyz")
    assert parse_setup_text("https://public/checkin#setup=xyz", "http://lan:8000/") == ("http://lan:8000", "xyz")
    assert parse_setup_text("xyz", "https://s.vn/") == ("https://s.vn", "xyz")
    for bad, server_url in (("xyz", None), ("https://s.vn/checkin", None), ("ftp://s/checkin#setup=x", None),
                            ("a b", "https://s")):
        with pytest.raises(SetupError):
            parse_setup_text(bad, server_url)


def test_provisioning_stores_token_anchor_and_bundle(world: World, server: FakeServer) -> None:
    store = StationStore(":memory:")
    client = StationClient(ISSUER, http=httpx.Client(transport=httpx.MockTransport(server.handler)))
    with pytest.raises(SetupError, match="invalid_provisioning_code"):
        provision_station(store, client, "wrong", world.now)
    assert store.provisioning() is None
    report = provision_station(store, client, "good-code", world.now)
    assert (report.station_id, report.event_id, report.bundle_problem) == (STATION_ID, EVENT_ID, None)
    stored = store.provisioning()
    assert stored is not None and stored.device_token == "cdv_test" and stored.anchor_jwk == world.anchor_jwk
    assert store.bundle_token() == server.bundle_token


# -- display ----------------------------------------------------------------------------------------------------------

def test_full_screen_result_colours_banner_and_bells() -> None:
    out = io.StringIO()
    display = TerminalDisplay(out, full_screen=True, bell=True)
    offline = StationStatus(online=False, queued=3)
    display.show(Outcome(ok=True, reason=None, name="Nguyễn Thị Lan", direction="in"), offline)
    screen = out.getvalue()
    assert "\x1b[1;97;42m" in screen and "Nguyễn Thị Lan" in screen and "MỜI VÀO" in screen
    assert "OFFLINE" in screen and "chờ gửi: 3" in screen and "\x1b#3" in screen
    assert screen.count("\a") == 1
    out.seek(0)
    out.truncate()
    display.show(Outcome(ok=False, reason="revoked", name="Lê Thị Thu"), replace(offline, online=True))
    time.sleep(0.4)  # the second bell comes from a timer: show() returned at once
    screen = out.getvalue()
    assert "\x1b[1;97;41m" in screen and "Thẻ đã bị thu hồi" in screen and "mã lỗi: revoked" in screen
    assert "OFFLINE" not in screen and screen.count("\a") == 2


def test_plain_display_writes_one_line_per_result() -> None:
    out = io.StringIO()
    display = TerminalDisplay(out, bell=False)
    display.show(Outcome(ok=False, reason="expired", nonce="st1-a", offline=True), StationStatus(False, 2))
    display.ready(StationStatus(True, 0))
    display.ready(StationStatus(True, 0))
    assert out.getvalue().splitlines() == [
        "RESULT DENIED reason=expired mode=offline nonce=st1-a queued=2 name=-", "STATUS online queued=0 conflicts=0"]


def test_the_door_says_which_kind_of_card_was_scanned() -> None:
    """A live code (docs/card-format.md §8) or a printed card, and the ID-check prompt of a live_preferred event."""
    out = io.StringIO()
    display = TerminalDisplay(out, full_screen=True, bell=False)
    status = StationStatus(online=True, queued=0)
    display.show(Outcome(ok=True, reason=None, name="Nguyễn Thị Lan", direction="in", live=True), status)
    assert "thẻ động trên điện thoại" in out.getvalue() and "đối chiếu" not in out.getvalue()
    out.seek(0)
    out.truncate()
    display.show(Outcome(ok=True, reason=None, name="Lê Thị Thu", direction="in", id_check=True), status)
    assert "thẻ in hoặc mã tĩnh" in out.getvalue() and "Thẻ in — đối chiếu giấy tờ tùy thân" in out.getvalue()
    out.seek(0)
    out.truncate()
    display.show(Outcome(ok=False, reason="stale_live_code", name="Lê Thị Thu", live=True), status)
    assert "Mã động đã cũ" in out.getvalue()
    plain = io.StringIO()
    TerminalDisplay(plain, bell=False).show(Outcome(ok=True, reason=None, nonce="st1-b", live=True), status)
    assert plain.getvalue() == "RESULT OK reason=- mode=online nonce=st1-b queued=0 card=live name=-\n"
    answer = CheckinAnswer.from_json({"result": "ok", "reason": None, "direction": "in", "live": True,
                                      "id_check": False})
    assert (answer.live, answer.id_check) == (True, False)
    assert CheckinAnswer.from_json({"result": "ok", "reason": None}).live is False  # a server before live codes
