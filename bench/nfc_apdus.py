"""Bench: APDUs to read and verify a card on NTAG213/215/216, through pcscd + vpcd with the test suite's virtual tags.

For each tag and credential it writes the card (``cardsvc.nfc.write_card``), then reads and verifies it
(``cardsvc.nfc.read_card``) and prints the APDUs the read took against two references from the same run: the minimum
(16-byte READs covering exactly the user memory up to the end of the NDEF TLV) and a full dump of the user memory.
Target: ≤ 12 APDUs for the budget credential on NTAG215 (reader latency is dominated by the APDU count).

    .venv/bin/python bench/nfc_apdus.py

Needs pcscd and the vpcd driver (started as in tests/readers/conftest.py). Prints only; never asserts.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and bench/issuance.py would hide the `issuance` package.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from cardsvc.nfc import read_card, write_card
from tests.readers.virtual_ntag import KINDS, CardIssuer, VirtualNtag, running_vpcd
from verification.readers.errors import TagTooSmallError

TARGET = 12
URI = "https://the.hoilhpn.vn/c/7Q2KX9"


def main() -> None:
    issuer = CardIssuer()
    budget, tiny = issuer.issue(), issuer.tiny()
    cases = [("ntag213", "smallest", tiny, None), ("ntag213", "budget", budget, None)]
    cases += [(kind, label, budget, uri) for kind in ("ntag215", "ntag216")
              for label, uri in (("budget", None), ("budget+uri", URI))]
    print(f"{'tag':8} {'credential':>16} {'TLV end':>7} {'read APDUs':>10} {'minimum':>7} {'full dump':>9} "
          f"{'ratio':>5} {'write APDUs':>11} {'read+verify ms':>14}")
    with tempfile.TemporaryDirectory() as logs, running_vpcd(Path(logs)) as slots:
        slot = slots[0]
        for kind, label, credential, uri in cases:
            slot.plug(VirtualNtag(kind))
            name = f"{label} {len(credential)} B"
            try:
                written = write_card(credential, reader_name=slot.name, uri=uri, lock=False, password=None,
                                     verify=issuer.verify)
            except TagTooSmallError as exc:
                print(f"{kind:8} {name:>16} {exc.needed:>7}  too small: {exc.capacity} bytes of user memory")
                continue
            start = time.perf_counter()
            read = read_card(slot.name, issuer.verify)
            elapsed = (time.perf_counter() - start) * 1000
            minimum = math.ceil((written.ndef_bytes - 1) / 16)  # the FE terminator need not be read
            full = math.ceil(KINDS[kind].user_bytes / 16)
            mark = ""
            if (kind, label) == ("ntag215", "budget"):
                mark = " (target met)" if read.apdu_count <= TARGET else f" (target {TARGET} MISSED)"
            print(f"{kind:8} {name:>16} {written.ndef_bytes:>7} {read.apdu_count:>10} {minimum:>7} {full:>9} "
                  f"{read.apdu_count / minimum:>5.2f} {written.apdu_count:>11} {elapsed:>14.1f}{mark}")
            slot.unplug()
    print(f"target: ≤ {TARGET} APDUs to read and verify the budget credential on NTAG215 "
          "(the read stops at the end of the NDEF TLV; the terminator and the rest of the memory are never read)")


if __name__ == "__main__":
    main()
