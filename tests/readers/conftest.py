"""The real PC/SC stack for reader tests: pcscd with the vsmartcard ``vpcd`` driver, and virtual tags plugged into it.

The session fixture :func:`vpcd` makes sure pcscd runs with the vpcd driver (:func:`running_vpcd`: if no pcscd
answers it starts ``pcscd --foreground`` and stops that process at the end) and waits until pyscard lists the
"Virtual PCD" readers; vpcd exposes two slots, on TCP ports 35963 and 35964. A missing pcscd or vpcd driver skips
the reader tests with the reason, except under ``CI=true`` where it fails them: CI must run them (Debian packages
``pcscd`` and ``vsmartcard-vpcd``, listed in scripts/apt-packages.txt).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.readers.virtual_ntag import CardIssuer, VirtualNtag, VpcdSlot, VpcdUnavailable, running_vpcd


@pytest.fixture(scope="session")
def vpcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[VpcdSlot]]:
    """The vpcd reader slots of a running pcscd."""
    try:
        with running_vpcd(tmp_path_factory.mktemp("pcscd")) as slots:
            yield slots
    except VpcdUnavailable as exc:
        # `make test` installs pcscd and vsmartcard-vpcd: their absence fails the run, it never skips it.
        pytest.fail(f"reader tests need pcscd with the vpcd driver (make test installs them): {exc}")


@pytest.fixture
def slot(vpcd: list[VpcdSlot]) -> Iterator[VpcdSlot]:
    """The first virtual reader slot, emptied after the test."""
    yield vpcd[0]
    for each in vpcd:
        each.unplug()


@pytest.fixture
def tag_on_reader(slot: VpcdSlot) -> Callable[[str], VirtualNtag]:
    """Put a factory-fresh virtual tag of a kind (``ntag213``, ``ntag215``, ``ntag216``, ``ultralight``,
    ``no_version``) on the first reader."""

    def plug(kind: str) -> VirtualNtag:
        return slot.plug(VirtualNtag(kind))

    return plug


@pytest.fixture(scope="session")
def issuer() -> CardIssuer:
    """A test signing key issuing and verifying credentials."""
    return CardIssuer()
