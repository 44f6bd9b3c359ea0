"""What the steward sees and hears: a full-screen terminal result, big green name or big red reason (Vietnamese, with
the reason code for support calls), an OFFLINE banner with the queue length, and a bell (one for a welcome, two
for a refusal).

Rendering never waits: the screen is written in one go, the second bell of a refusal is sent by a timer thread, and
there is no dialog to dismiss, so the next scan is handled at once (pretix stations' blocking result dialogs are a
known complaint). On a terminal that is not a TTY (logs, tests) one plain line per result is written instead.

Big text uses the DEC double-width/double-height line attributes (``ESC # 3`` / ``ESC # 4``), which xterm, VTE
(GNOME Terminal), Konsole and kitty render; other terminals show the line twice at normal size, which stays legible.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol, TextIO

REASON_TEXT: Final[dict[str, str]] = {
    "malformed": "Mã không đọc được",
    "unsupported_version": "Phiên bản thẻ không được hỗ trợ",
    "unknown_key": "Thẻ không do Hội phát hành",
    "bad_signature": "Thẻ giả hoặc đã bị sửa",
    "not_yet_valid": "Thẻ chưa có hiệu lực",
    "expired": "Thẻ đã hết hạn",
    "revoked": "Thẻ đã bị thu hồi",
    "suspended": "Thẻ đang bị tạm đình chỉ",
    "superseded": "Thẻ cũ — đã được thay bằng thẻ mới",
    "key_retired": "Khóa ký đã bị thu hồi — cần cấp lại thẻ",
    "already_checked_in": "Đã điểm danh rồi",
    "not_eligible": "Không có trong danh sách sự kiện",
    "event_closed": "Sự kiện đã đóng",
    "outside_window": "Ngoài giờ điểm danh",
    "no_bundle": "Chưa có dữ liệu ngoại tuyến — cần kết nối mạng",
    "no_status_list": "Thiếu danh sách trạng thái — cần đồng bộ trạm",
    "device_rejected": "Thiết bị bị từ chối — cần cài đặt lại trạm",
    "read_failed": "Không đọc được thẻ — giữ yên thẻ và thử lại",
    "nfc_write_failed": "Ghi thẻ NFC không thành công",
    "holder_proof_invalid": "Bản sao thẻ điện tử — cần mã động trên điện thoại chủ thẻ",
    "stale_live_code": "Mã động đã cũ — ảnh chụp hoặc đồng hồ sai",
    "live_code_required": "Sự kiện chỉ nhận thẻ động trên điện thoại",
}
LIVE_TEXT: Final = "thẻ động trên điện thoại"
PRINTED_TEXT: Final = "thẻ in hoặc mã tĩnh"
ID_CHECK_TEXT: Final = "Thẻ in — đối chiếu giấy tờ tùy thân"
DENIED_TEXT: Final = "Không được vào"
_RESET: Final = "\x1b[0m"
_GREEN: Final = "\x1b[1;97;42m"
_RED: Final = "\x1b[1;97;41m"
_NEUTRAL: Final = "\x1b[0;97;44m"
_BANNER_OFFLINE: Final = "\x1b[1;30;43m"
_BANNER_ONLINE: Final = "\x1b[0;30;47m"
_CLEAR: Final = "\x1b[H\x1b[2J"
_HIDE_CURSOR: Final = "\x1b[?25l"
SECOND_BELL_DELAY: Final = 0.18


def reason_text(reason: str | None) -> str:
    """The Vietnamese sentence for a reason code (the code itself for one this station does not know)."""
    if reason is None:
        return ""
    return REASON_TEXT.get(reason, DENIED_TEXT)


@dataclass(frozen=True)
class Outcome:
    """The result of one scan, as shown.

    Attributes:
        ok: The member may enter (or leave, for ``direction == "out"``).
        reason: The reason code when refused.
        name: The member's name when known (also on many refusals, so the steward can talk to her).
        member_number: Her member number when known.
        chapter: Her chapter's name when known.
        direction: ``in`` or ``out`` for an accepted scan.
        offline: Decided by this station without the server.
        nonce: The client nonce the scan is queued under (None for a read failure, which is not a scan).
        first_at: For ``already_checked_in``: when she was first let in, if known.
        message: Extra text (a reader's message for a failed read).
        live: The scan was a live code (docs/card-format.md §8); the screen says which kind of card it was.
        id_check: A printed card let in at a ``live_preferred`` event: compare it with an identity document.
    """

    ok: bool
    reason: str | None
    name: str | None = None
    member_number: str | None = None
    chapter: str | None = None
    direction: str | None = None
    offline: bool = False
    nonce: str | None = None
    first_at: datetime | None = None
    message: str | None = None
    live: bool = False
    id_check: bool = False


@dataclass(frozen=True)
class StationStatus:
    """The station's state line."""

    online: bool
    queued: int
    conflicts: int = 0
    event_title: str | None = None
    bundle_issued_at: datetime | None = None
    problem: str | None = None


class Display(Protocol):
    """Where results go."""

    def show(self, outcome: Outcome, status: StationStatus) -> None:
        """Show one result (returns at once)."""
        ...

    def ready(self, status: StationStatus) -> None:
        """Show the idle screen, or refresh the state line."""
        ...

    def notice(self, lines: list[str], details: list[str], status: StationStatus) -> None:
        """Show an instruction that is not a scan's result (put a blank tag on the reader, tag written)."""
        ...


def _age(issued: datetime | None, now: datetime) -> str:
    if issued is None:
        return "chưa có dữ liệu"
    minutes = max(0, int((now - issued) / timedelta(minutes=1)))
    return f"dữ liệu {minutes} phút trước" if minutes < 120 else f"dữ liệu {minutes // 60} giờ trước"


class TerminalDisplay:
    """A :class:`Display` on a terminal (full screen) or on any text stream (plain lines).

    Args:
        stream: Where to write.
        full_screen: ANSI full-screen rendering; default: when ``stream`` is a TTY.
        bell: Ring the terminal bell; default: when ``stream`` is a TTY (a log file wants no BEL characters).
        clock: The station clock, for the age of the offline data shown in the state line.
    """

    def __init__(self, stream: TextIO, *, full_screen: bool | None = None, bell: bool | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._stream = stream
        self._full = stream.isatty() if full_screen is None else full_screen
        self._bell = stream.isatty() if bell is None else bell
        self._lock = threading.Lock()
        self._last_status: StationStatus | None = None
        self._clock = clock if clock is not None else (lambda: datetime.now(UTC))

    @property
    def full_screen(self) -> bool:
        """Whether the terminal is drawn full screen (the caller restores the cursor on exit)."""
        return self._full

    def _write(self, text: str) -> None:
        with self._lock:
            self._stream.write(text)
            self._stream.flush()

    def _ring(self, times: int) -> None:
        if not self._bell:
            return
        self._write("\a")
        if times > 1:
            timer = threading.Timer(SECOND_BELL_DELAY, self._write, args=("\a",))
            timer.daemon = True
            timer.start()

    def _banner(self, status: StationStatus, width: int) -> str:
        state = "TRỰC TUYẾN" if status.online else "OFFLINE — đang kiểm tra tại chỗ"
        parts = [state, f"chờ gửi: {status.queued}"]
        if status.conflicts:
            parts.append(f"xung đột: {status.conflicts}")
        if status.event_title:
            parts.append(status.event_title)
        if not status.online:
            parts.append(_age(status.bundle_issued_at, self._clock()))
        if status.problem:
            parts.append(status.problem)
        colour = _BANNER_ONLINE if status.online else _BANNER_OFFLINE
        return f"{colour}{' | '.join(parts)[:width].ljust(width)}{_RESET}"

    def _screen(self, colour: str, big: list[str], small: list[str], status: StationStatus) -> str:
        size = shutil.get_terminal_size((80, 24))
        width, height = size.columns, size.lines
        body_lines = len(big) * 2 + len(small) + 1
        top = max(1, (height - 1 - body_lines) // 2)
        out = [_HIDE_CURSOR, colour, _CLEAR, self._banner(status, width), colour, "\n" * top]
        half = max(1, width // 2)
        for line in big:
            text = line[:half].center(half).rstrip()
            out.append(f"\x1b#3{text}\n\x1b#4{text}\n")
        out.append("\n")
        out.extend(f"{line[:width].center(width).rstrip()}\n" for line in small)
        return "".join(out)

    def show(self, outcome: Outcome, status: StationStatus) -> None:
        """See :meth:`Display.show`."""
        self._last_status = status
        if not self._full:
            self._write(self._plain(outcome, status))
        else:
            self._write(self._screen(_GREEN if outcome.ok else _RED, *self._texts(outcome), status))
        self._ring(1 if outcome.ok else 2)

    def _texts(self, outcome: Outcome) -> tuple[list[str], list[str]]:
        who = [outcome.name] if outcome.name else []
        details = [d for d in (outcome.member_number, outcome.chapter) if d]
        if outcome.ok:
            big = ["✓ MỜI RA" if outcome.direction == "out" else "✓ MỜI VÀO", *who]
            small = [" · ".join([*details, LIVE_TEXT if outcome.live else PRINTED_TEXT])]
            if outcome.id_check:
                big.append(ID_CHECK_TEXT)
        else:
            big = ["✗ " + reason_text(outcome.reason), *who]
            small = [f"mã lỗi: {outcome.reason}", *([" · ".join(details)] if details else [])]
            if outcome.first_at is not None:
                small.append(f"vào lúc {outcome.first_at.astimezone().strftime('%H:%M:%S')}")
        if outcome.message:
            small.append(outcome.message)
        if outcome.offline:
            small.append("(kiểm tra ngoại tuyến — sẽ gửi lên máy chủ khi có mạng)")
        return big, small

    def _plain(self, outcome: Outcome, status: StationStatus) -> str:
        verdict = "OK" if outcome.ok else "DENIED"
        mode = "offline" if outcome.offline else "online"
        name = outcome.name or "-"
        card = (" card=live" if outcome.live else "") + (" id_check" if outcome.id_check else "")
        return (f"RESULT {verdict} reason={outcome.reason or '-'} mode={mode} nonce={outcome.nonce or '-'} "
                f"queued={status.queued}{card} name={name}\n")

    def ready(self, status: StationStatus) -> None:
        """See :meth:`Display.ready`. Plain mode writes a line only when the state changes."""
        previous, self._last_status = self._last_status, status
        if not self._full:
            if previous is None or (previous.online, previous.queued, previous.problem) != (
                    status.online, status.queued, status.problem):
                mode = "online" if status.online else "offline"
                self._write(f"STATUS {mode} queued={status.queued} conflicts={status.conflicts}"
                            f"{' problem=' + status.problem if status.problem else ''}\n")
            return
        self._write(self._screen(_NEUTRAL, ["SẴN SÀNG"], ["Quét mã QR hoặc chạm thẻ"], status))

    def notice(self, lines: list[str], details: list[str], status: StationStatus) -> None:
        """See :meth:`Display.notice`."""
        self._last_status = status
        if not self._full:
            self._write(f"NOTICE {' / '.join(lines)}{' (' + ', '.join(details) + ')' if details else ''}\n")
            return
        self._write(self._screen(_NEUTRAL, lines, details, status))
        self._ring(1)
