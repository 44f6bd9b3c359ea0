"""What reading one member file may cost, and the error a file that cannot be read raises.

A file is refused as soon as it exceeds one of the limits, so that the work stays proportional to what the file
really holds: an XLSX of 1.6 kB that names row 1,000,000,000, or a zip that expands a thousand times, is refused
after a few kilobytes of work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from integrations.errors import InputError

__all__ = ["MAX_COLUMNS", "MAX_COMPRESSION_RATIO", "MAX_READ_SECONDS", "MAX_XLSX_UNCOMPRESSED_BYTES",
           "ReadBudget"]

# An XLSX is a zip of XML parts. A member list of 200,000 rows written by Excel, LibreOffice or openpyxl expands
# to at most ~150 MB; the parts of real workbooks compress 3 to 30 times (measured on generated and office files).
MAX_XLSX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
MAX_COMPRESSION_RATIO = 100
# Parts smaller than this may have any ratio (a few kB of repeated styles); they cannot cost much either way.
RATIO_EXEMPT_BYTES = 1024 * 1024
# Cells right of column DX are not read: no member list is that wide, and it bounds the file given back with an
# error column (one cell per column up to that column, per row with an error).
MAX_COLUMNS = 128
# A backstop for what the other limits miss: reading 200,000 rows takes a few seconds.
MAX_READ_SECONDS = 60.0


def too_large(message_en: str, message_vi: str) -> InputError:
    """The error for a file beyond the limits; the message says what to do."""
    return InputError("too_large", message_en, message_vi)


@dataclass
class ReadBudget:
    """Limits on reading one file, and counters of the work done (tests and benches read them).

    ``clock`` is injected so that the time limit can be tested without waiting.
    """

    max_inflated_bytes: int = MAX_XLSX_UNCOMPRESSED_BYTES
    max_ratio: int = MAX_COMPRESSION_RATIO
    seconds: float = MAX_READ_SECONDS
    clock: Callable[[], float] = time.monotonic
    rows_visited: int = 0
    bytes_inflated: int = 0
    _deadline: float | None = field(default=None, repr=False)

    def start(self) -> None:
        """Start the clock (reading a file calls this once)."""
        self._deadline = self.clock() + self.seconds

    def check_time(self) -> None:
        """Raise once the time budget is spent."""
        if self._deadline is not None and self.clock() > self._deadline:
            raise too_large("Reading the file takes too long; split it into several smaller files.",
                            "Đọc tệp mất quá nhiều thời gian; hãy chia thành nhiều tệp nhỏ hơn.")

    def inflate(self, count: int) -> None:
        """Count ``count`` bytes taken out of a compressed part; raise beyond the cap."""
        self.bytes_inflated += count
        if self.bytes_inflated > self.max_inflated_bytes:
            raise expands_too_much(self.max_inflated_bytes)


def expands_too_much(limit: int) -> InputError:
    """The error for an XLSX whose parts expand beyond ``limit`` bytes."""
    megabytes = limit // (1024 * 1024)
    return too_large(
        f"The Excel file expands to more than {megabytes} MB; split it into several files.",
        f"Tệp Excel khi giải nén lớn hơn {megabytes} MB; hãy chia thành nhiều tệp.",
    )
