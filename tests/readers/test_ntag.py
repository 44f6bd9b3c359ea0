"""NTAG213/215/216 card tags through the real PC/SC stack: pcscd + vpcd + pyscard, with virtual tags (conftest.py).

Also the pure NDEF/TLV encoding and decoding (issuance.ndef, verification.ndef) the tag code is built on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardsvc.nfc import WriteReport, read_card, write_card
from issuance.ndef import encode_card_ndef, ndef_tlv
from tests.readers.virtual_ntag import CardIssuer, VirtualNtag, VpcdSlot
from verification.ndef import (
    NdefError,
    NdefTlv,
    NeedMore,
    card_credential_from_ndef,
    leading_control_tlvs_end,
    locate_ndef_tlv,
    parse_records,
    parse_tlvs,
)
from verification.readers.errors import (
    NoReaderError,
    NoTagError,
    NotAnNtagError,
    ReaderNotFoundError,
    SeveralReadersError,
    TagLockedError,
    TagPasswordError,
    TagRemovedError,
    TagTooSmallError,
)
from verification.readers.pcsc import Ntag, PcscTagReader, choose_reader

PlugTag = Callable[[str], VirtualNtag]
FACTORY_213_USER = bytes.fromhex("0103A00C340300FE")
# The budget credential (168 bytes) in its TLV is 190 bytes = 48 pages; over an old card, one more write first sets
# the old TLV's length to 0.
REWRITE_PAGE_WRITES = 49
REPO = Path(__file__).resolve().parents[2]


def _write(slot: VpcdSlot, issuer: CardIssuer, credential: bytes, *, lock: bool = False,
           password: bytes | None = None) -> WriteReport:
    return write_card(credential, reader_name=slot.name, uri=None, lock=lock, password=password, verify=issuer.verify)


# -- through pcscd ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ntag215", "ntag216"])
def test_write_then_read_round_trip(kind: str, slot: VpcdSlot, tag_on_reader: PlugTag, issuer: CardIssuer) -> None:
    tag = tag_on_reader(kind)
    credential = issuer.issue()

    report = write_card(credential, reader_name=slot.name, uri=None, lock=False, password=None, verify=issuer.verify)
    read = read_card(slot.name, issuer.verify)

    assert report.variant == kind.upper()
    assert report.uid == tag.uid.hex()
    assert (report.credential_bytes, report.ndef_bytes) == (168, 190)
    assert read.credential == credential
    assert read.verdict == issuer.verify(credential)
    assert tag.page(4)[:2] == bytes((0x03, 187))


def test_uri_record_comes_first_and_the_card_is_still_found(
        slot: VpcdSlot, tag_on_reader: PlugTag, issuer: CardIssuer) -> None:
    tag_on_reader("ntag215")
    credential = issuer.issue()

    write_card(credential, reader_name=slot.name, uri="https://the.hoilhpn.vn/c/7Q2K", lock=False, password=None,
               verify=issuer.verify)
    with PcscTagReader.open(slot.name) as reader:
        records = parse_records(Ntag(reader).read_ndef())

    assert [(r.tnf, r.type) for r in records] == [(1, b"U"), (4, b"hoilhpn.vn:card1")]
    assert records[0].payload == b"\x04the.hoilhpn.vn/c/7Q2K"
    assert read_card(slot.name, issuer.verify).credential == credential


def test_ntag213_is_too_small_for_a_normal_card_and_is_left_untouched(
        slot: VpcdSlot, tag_on_reader: PlugTag, issuer: CardIssuer) -> None:
    tag = tag_on_reader("ntag213")
    before = bytes(tag.memory)

    with pytest.raises(TagTooSmallError) as caught:
        _write(slot, issuer, issuer.issue())

    assert (caught.value.needed, caught.value.capacity) == (5 + 190, 144)
    assert "NTAG215" in str(caught.value)
    assert bytes(tag.memory) == before


def test_ntag213_takes_the_smallest_credential_after_its_lock_control_tlv(
        slot: VpcdSlot, tag_on_reader: PlugTag, issuer: CardIssuer) -> None:
    tag = tag_on_reader("ntag213")
    credential = issuer.tiny()

    report = _write(slot, issuer, credential)

    assert report.ndef_bytes == report.capacity == 144
    assert tag.page(4) == FACTORY_213_USER[:4]
    assert tag.page(5)[0] == 0x34
    assert read_card(slot.name, issuer.verify).credential == credential


def test_reading_a_card_on_ntag215_takes_at_most_12_apdus(
        slot: VpcdSlot, tag_on_reader: PlugTag, issuer: CardIssuer) -> None:
    tag = tag_on_reader("ntag215")
    _write(slot, issuer, issuer.issue())
    tag.apdus.clear()

    read = read_card(slot.name, issuer.verify)

    assert read.apdu_count == len(tag.apdus) == 12
    # Only READs, of consecutive 4-page blocks from page 4, and none beyond the NDEF TLV (190 bytes → page 51).
    assert tag.apdus == [bytes((0xFF, 0xB0, 0x00, page, 0x10)) for page in range(4, 52, 4)]


def test_reading_a_blank_tag_takes_one_apdu(slot: VpcdSlot, tag_on_reader: PlugTag, issuer: CardIssuer) -> None:
    tag = tag_on_reader("ntag215")

    with pytest.raises(NdefError) as caught:
        read_card(slot.name, issuer.verify)

    assert caught.value.reason == "empty"
    assert len(tag.apdus) == 1


def test_a_tag_written_by_another_application_has_no_card_record(
        slot: VpcdSlot, tag_on_reader: PlugTag, issuer: CardIssuer) -> None:
    tag = tag_on_reader("ntag213")
    uri_only = bytes.fromhex("D1010B55") + b"\x04example.vn"
    tag.load_ndef(ndef_tlv(uri_only), at=5)

    with pytest.raises(NdefError) as caught:
        read_card(slot.name, issuer.verify)

    assert caught.value.reason == "no_card_record"


def test_lock_makes_the_tag_read_only(slot: VpcdSlot, tag_on_reader: PlugTag, issuer: CardIssuer) -> None:
    tag = tag_on_reader("ntag215")
    credential = issuer.issue()

    report = _write(slot, issuer, credential, lock=True)

    assert report.locked
    assert tag.page(3) == bytes.fromhex("E1103E0F")
    assert tag.page(2)[2:] == b"\xff\xff"
    assert tag.page(130)[:3] == b"\xff\xff\xff"
    with pytest.raises(TagLockedError):
        _write(slot, issuer, issuer.issue())
    assert read_card(slot.name, issuer.verify).credential == credential


def test_a_tag_with_lock_bits_only_is_refused_before_any_write(
        slot: VpcdSlot, tag_on_reader: PlugTag, issuer: CardIssuer) -> None:
    tag = tag_on_reader("ntag216")
    tag.memory[226 * 4] = 0x01  # one dynamic lock bit, CC still saying read/write
    before = bytes(tag.memory)

    with pytest.raises(TagLockedError):
        _write(slot, issuer, issuer.issue())

    assert bytes(tag.memory) == before


def test_password_protects_writes(slot: VpcdSlot, tag_on_reader: PlugTag, issuer: CardIssuer) -> None:
    tag = tag_on_reader("ntag215")
    first, second = issuer.issue(), issuer.issue()

    report = _write(slot, issuer, first, password=b"door 7 secret")

    assert report.password_protected
    assert tag.auth0 == 3
    with pytest.raises(TagPasswordError):
        _write(slot, issuer, second)
    with pytest.raises(TagPasswordError):
        _write(slot, issuer, second, password=b"wrong")
    # Without PWD_AUTH, the tag itself refuses a raw page write.
    with PcscTagReader.open(slot.name) as reader, pytest.raises(TagLockedError):
        Ntag(reader).write_page(4, b"\x03\x00\xfe\x00")
    assert read_card(slot.name, issuer.verify).credential == first

    _write(slot, issuer, second, password=b"door 7 secret")
    assert read_card(slot.name, issuer.verify).credential == second


@pytest.mark.parametrize("writes_before_removal", range(REWRITE_PAGE_WRITES))
def test_a_tag_pulled_mid_write_never_holds_a_partial_card(
        writes_before_removal: int, vpcd: list[VpcdSlot], slot: VpcdSlot, issuer: CardIssuer) -> None:
    old, new = issuer.issue(), issuer.issue()
    assert len(old) == len(new) == 168
    tag = VirtualNtag("ntag215")
    tag.load_ndef(ndef_tlv(encode_card_ndef(old)))
    slot.plug(tag)
    tag.remove_after_writes(writes_before_removal)

    with pytest.raises(TagRemovedError):
        _write(slot, issuer, new)
    slot.unplug()
    # The holder taps the tag on another reader.
    other = vpcd[1]
    other.plug(tag)
    try:
        read = read_card(other.name, issuer.verify)
    except NdefError as exc:
        assert exc.reason == "empty"
        assert writes_before_removal > 0
    else:
        # Only a tag pulled before its first write still holds the old card, complete.
        assert writes_before_removal == 0
        assert read.credential == old
    finally:
        other.unplug()


def test_an_uninterrupted_rewrite_takes_the_page_writes_the_removal_test_covers(
        slot: VpcdSlot, issuer: CardIssuer) -> None:
    tag = VirtualNtag("ntag215")
    tag.load_ndef(ndef_tlv(encode_card_ndef(issuer.issue())))
    slot.plug(tag)
    tag.apdus.clear()

    _write(slot, issuer, issuer.issue())

    assert sum(1 for apdu in tag.apdus if apdu[:2] == b"\xff\xd6") == REWRITE_PAGE_WRITES


def test_a_tag_pulled_mid_read_is_reported(slot: VpcdSlot, tag_on_reader: PlugTag, issuer: CardIssuer) -> None:
    tag = tag_on_reader("ntag215")
    _write(slot, issuer, issuer.issue())
    tag.remove_after_apdus(3)

    with pytest.raises(TagRemovedError, match="hold it still"):
        read_card(slot.name, issuer.verify)


@pytest.mark.parametrize("kind", ["ultralight", "no_version"])
def test_not_an_ntag_is_refused_and_left_untouched(
        kind: str, slot: VpcdSlot, tag_on_reader: PlugTag, issuer: CardIssuer) -> None:
    tag = tag_on_reader(kind)
    before = bytes(tag.memory)

    with pytest.raises(NotAnNtagError) as caught:
        _write(slot, issuer, issuer.tiny())

    assert "not an NTAG213/215/216" in str(caught.value)
    assert (caught.value.version is None) == (kind == "no_version")
    assert bytes(tag.memory) == before


def test_no_tag_on_the_reader(slot: VpcdSlot, issuer: CardIssuer) -> None:
    with pytest.raises(NoTagError):
        read_card(slot.name, issuer.verify)


def test_several_readers_need_a_choice(vpcd: list[VpcdSlot], tag_on_reader: PlugTag, issuer: CardIssuer) -> None:
    assert len(vpcd) == 2  # vpcd exposes two slots: "Virtual PCD 00 00" and "Virtual PCD 00 01"
    tag_on_reader("ntag215")

    with pytest.raises(SeveralReadersError) as caught:
        read_card(None, issuer.verify)
    with pytest.raises(ReaderNotFoundError):
        read_card("no such reader", issuer.verify)

    assert {each.name for each in vpcd} <= set(caught.value.names)
    assert "--reader" in str(caught.value)
    with PcscTagReader.open("0") as by_index, PcscTagReader.open("pcd 00 00") as by_part:
        assert by_index.name == by_part.name == vpcd[0].name


def test_no_reader_when_pcscd_is_unreachable() -> None:
    # A client pointed at a PC/SC socket nobody serves sees no reader service at all.
    env = dict(os.environ, PCSCLITE_CSOCK_NAME="/nonexistent/pcscd.comm")
    script = ("from verification.readers.pcsc import PcscTagReader\n"
              "from verification.readers.errors import NoReaderError\n"
              "try:\n    PcscTagReader.open()\nexcept NoReaderError as exc:\n    print('NoReaderError:', exc)\n")
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=60, check=False)

    assert result.stdout.startswith("NoReaderError:"), result.stdout + result.stderr


def test_choose_reader_semantics() -> None:
    names = ["ACS ACR122U PICC Interface 00 00", "Virtual PCD 00 00"]
    with pytest.raises(NoReaderError):
        choose_reader([], None)
    with pytest.raises(SeveralReadersError):
        choose_reader(names, None)
    assert choose_reader(names[:1], None) == names[0]
    assert choose_reader(names, 1) == choose_reader(names, "1") == choose_reader(names, "virtual") == names[1]
    assert choose_reader(names, "ACS ACR122U PICC Interface 00 00") == names[0]
    with pytest.raises(ReaderNotFoundError):
        choose_reader(names, "00 00")  # matches both
    with pytest.raises(ReaderNotFoundError):
        choose_reader(names, 2)


# -- NDEF and TLVs, pure ----------------------------------------------------------------------------------------------


def test_card_ndef_layout() -> None:
    message = encode_card_ndef(b"\xd2\x84credential")

    assert message == bytes((0xD4, 16, 12)) + b"hoilhpn.vn:card1" + b"\xd2\x84credential"
    assert ndef_tlv(message) == bytes((0x03, len(message))) + message + b"\xfe"
    assert card_credential_from_ndef(message) == b"\xd2\x84credential"


def test_long_messages_use_the_three_byte_tlv_length() -> None:
    message = encode_card_ndef(bytes(300))

    tlv = ndef_tlv(message)

    assert tlv[:4] == b"\x03\xff" + len(message).to_bytes(2, "big")
    assert message[0] == 0xC4  # MB, ME, TNF 4 without SR: a 4-byte payload length
    assert parse_tlvs(tlv) == message
    assert card_credential_from_ndef(message) == bytes(300)


def test_tlv_walk_skips_lock_control_null_and_unknown_tlvs() -> None:
    data = FACTORY_213_USER[:5] + b"\x00\x00" + b"\xfd\x02ab" + ndef_tlv(b"\xd0\x00\x00")

    assert locate_ndef_tlv(data) == NdefTlv(tag_offset=11, value_offset=13, length=3)
    assert parse_tlvs(data) == b"\xd0\x00\x00"
    assert leading_control_tlvs_end(FACTORY_213_USER) == 5
    assert leading_control_tlvs_end(b"\x03\x00\xfe\x00") == 0
    assert leading_control_tlvs_end(b"\x01\x03\xa0") == NeedMore(5)


@pytest.mark.parametrize(("data", "reason"), [
    (FACTORY_213_USER, "empty"),
    (b"\x03\x00\xfe", "empty"),
    (b"\xfe", "empty"),
    (b"\x03\x10\xd0", "malformed"),
    (b"\x03\xff\x00\x10" + bytes(16), "malformed"),
    (b"\x01\xff\xff\xff", "malformed"),
])
def test_tlv_failures(data: bytes, reason: str) -> None:
    with pytest.raises(NdefError) as caught:
        parse_tlvs(data)
    assert caught.value.reason == reason


def test_locate_asks_for_exactly_the_bytes_it_needs() -> None:
    assert locate_ndef_tlv(b"") == NeedMore(1)
    assert locate_ndef_tlv(b"\x01\x03\xa0\x0c") == NeedMore(6)
    assert locate_ndef_tlv(b"\x03") == NeedMore(2)
    assert locate_ndef_tlv(b"\x03\xff\x01") == NeedMore(4)
    assert locate_ndef_tlv(b"\x03\xbb") == NdefTlv(0, 2, 0xBB)


@pytest.mark.parametrize("message", [
    b"",
    bytes.fromhex("9401"),  # MB without ME, truncated
    bytes.fromhex("D4010078") + b"\xff",  # a byte after the message-end record
    bytes.fromhex("94010078"),  # no message-end record
    bytes.fromhex("5401017861"),  # first record without MB
    bytes.fromhex("B4010178") + b"a",  # chunked
])
def test_malformed_messages(message: bytes) -> None:
    with pytest.raises(NdefError):
        card_credential_from_ndef(message)


def test_several_card_records_are_refused() -> None:
    one = encode_card_ndef(b"abc")
    two = bytes((one[0] & ~0x40,)) + one[1:] + bytes((one[0] & ~0x80,)) + one[1:]
    with pytest.raises(NdefError) as caught:
        card_credential_from_ndef(two)
    assert caught.value.reason == "malformed"


def test_card_record_type_compares_case_insensitively() -> None:
    message = encode_card_ndef(b"abc").replace(b"hoilhpn.vn:card1", b"HoiLHPN.VN:Card1")
    assert card_credential_from_ndef(message) == b"abc"


@given(credential=st.binary(min_size=1, max_size=600), path=st.text(min_size=1, max_size=80))
def test_ndef_round_trip(credential: bytes, path: str) -> None:
    for uri in (None, f"https://the.hoilhpn.vn/{path}"):
        message = encode_card_ndef(credential, uri=uri)
        assert card_credential_from_ndef(parse_tlvs(ndef_tlv(message) + b"\x00garbage")) == credential


def test_uri_must_be_https() -> None:
    with pytest.raises(ValueError, match="https"):
        encode_card_ndef(b"abc", uri="http://example.vn/")
