"""The station's side of issue 5: scans decided offline are uploaded with ``offline`` and the local verdict, and NFC
writes handed to the station are written to a (virtual) blank tag, verified, locked when asked, and reported.

The tag is :class:`tests.readers.virtual_ntag.VirtualNtag` answering APDUs directly (no pcscd, no vpcd)."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from datetime import datetime

import pytest

from station.client import CheckinUpload
from station.errors import ServerUnavailable
from station.inputs import Scan
from station.loop import BLANK_TAG_PROMPT, Station
from station.nfc_writer import TagWriter
from tests.readers.virtual_ntag import VirtualNtag
from tests.station.conftest import FakeClock, FakeServer, World
from tests.station.test_station import MakeStore, feed, make_station, scan
from verification.ndef import card_credential_from_ndef
from verification.readers import TagReader
from verification.readers.pcsc import Ntag


class DirectReader:
    """A TagReader wired straight to a virtual tag."""

    name = "Virtual ACR122U"

    def __init__(self, tag: VirtualNtag) -> None:
        self.tag = tag

    def transmit(self, apdu: bytes) -> bytes:
        return self.tag.process_apdu(apdu)

    def uid(self) -> bytes:
        return self.tag.uid

    def close(self) -> None:
        pass


def writer_for(tag: VirtualNtag, station: Station | None = None, at: datetime | None = None) -> TagWriter:
    @contextlib.contextmanager
    def open_reader() -> Iterator[TagReader]:
        if station is not None and at is not None:
            # The blank tag put on the reader also reaches the tap input: it must not count as a scan.
            assert station.handle(Scan("nfc", b"\x00blank", at)) is None
        yield DirectReader(tag)

    return TagWriter(open_reader=open_reader)


def task(server: FakeServer, world: World, label: str, *, request_id: int, lock: bool) -> None:
    card = world.cards[label]
    server.nfc_tasks.append({"id": request_id, "card_id": card.card_id.hex(), "lock": lock,
                             "credential_base64": base64.b64encode(card.credential).decode(),
                             "requested_at": world.now.isoformat()})


# -- offline uploads ---------------------------------------------------------------------------------------------------

def test_upload_body_carries_the_offline_verdict_only_for_offline_decisions(world: World) -> None:
    online = CheckinUpload("st5-a", "qr_scanner", "8401", world.now).body()
    assert "offline" not in online and "local_result" not in online
    offline = CheckinUpload("st5-b", "nfc", b"\x01", world.now, local_result="error", local_reason="x" * 40).body()
    assert offline["offline"] is True and offline["local_result"] == "error" and offline["local_reason"] == "x" * 32


def test_scans_decided_offline_are_uploaded_as_offline_with_the_local_verdict(
        world: World, server: FakeServer, clock: FakeClock, provisioned_store: MakeStore) -> None:
    store = provisioned_store()
    station, _ = make_station(store, server, clock, world)
    feed(station, scan(world, world.cards["lan"].qr))  # online: the server decides
    server.mode = "down"
    feed(station, scan(world, world.cards["hoa"].qr))
    feed(station, scan(world, world.cards["revoked"].qr))
    server.mode = "up"
    assert station.upload_pending() == 2
    online, hoa, revoked = server.bodies
    assert "offline" not in online
    assert (hoa["offline"], hoa["local_result"], hoa["local_reason"]) == (True, "ok", None)
    assert (revoked["offline"], revoked["local_result"], revoked["local_reason"]) == (True, "error", "revoked")


# -- NFC writes ----------------------------------------------------------------------------------------------------

def test_a_requested_write_is_written_verified_locked_and_reported(
        world: World, server: FakeServer, clock: FakeClock, provisioned_store: MakeStore) -> None:
    station, display = make_station(provisioned_store(), server, clock, world)
    tag = VirtualNtag("ntag215")
    station.nfc_writer = writer_for(tag, station, world.now)
    task(server, world, "lan", request_id=7, lock=True)

    assert station.write_requested_tags() == 1
    assert server.nfc_results == {7: {"ok": True, "error": None, "uid": tag.uid.hex()}}
    assert display.notices[0] == BLANK_TAG_PROMPT and display.notices[1][0] == "✓ Đã ghi thẻ"
    reader = DirectReader(tag)
    assert card_credential_from_ndef(Ntag(reader).read_ndef()) == world.cards["lan"].credential
    assert tag.page(2)[2:4] == b"\xff\xff"  # static lock bits: read-only
    assert station.write_requested_tags() == 0  # nothing pending any more


def test_a_failed_write_is_reported_with_the_readers_message(
        world: World, server: FakeServer, clock: FakeClock, provisioned_store: MakeStore) -> None:
    station, display = make_station(provisioned_store(), server, clock, world)
    station.nfc_writer = writer_for(VirtualNtag("ultralight"))
    task(server, world, "hoa", request_id=8, lock=False)
    assert station.write_requested_tags() == 1
    result = server.nfc_results[8]
    assert result["ok"] is False and result["uid"] is None and "Ultralight" in result["error"]
    assert display.shown[-1].reason == "nfc_write_failed"


def test_a_card_that_does_not_verify_here_is_written_but_never_locked(
        world: World, server: FakeServer, clock: FakeClock, provisioned_store: MakeStore) -> None:
    station, _ = make_station(provisioned_store(), server, clock, world)
    tag = VirtualNtag("ntag215")
    station.nfc_writer = writer_for(tag)
    task(server, world, "revoked", request_id=9, lock=True)
    station.write_requested_tags()
    assert server.nfc_results[9]["ok"] is False and "unlocked" in server.nfc_results[9]["error"]
    assert tag.page(2)[2:4] == b"\x00\x00"


def test_a_result_the_server_missed_is_reported_again_without_writing_again(
        world: World, server: FakeServer, clock: FakeClock, provisioned_store: MakeStore) -> None:
    station, _ = make_station(provisioned_store(), server, clock, world, max_failures=5)
    tag = VirtualNtag("ntag215")
    station.nfc_writer = writer_for(tag)
    task(server, world, "lan", request_id=10, lock=False)
    server.nfc_result_mode = "error"
    with pytest.raises(ServerUnavailable, match="503"):
        station.write_requested_tags()
    written_apdus = len(tag.apdus)
    server.nfc_result_mode = "up"
    assert station.write_requested_tags() == 1
    assert server.nfc_results[10]["ok"] is True and len(tag.apdus) == written_apdus
