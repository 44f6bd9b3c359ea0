"""What a wallet pass shows, in Vietnamese first and English: exactly what the printed card shows, nothing more."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

PassState = Literal["active", "suspended", "expired", "revoked", "no_card"]

# (Vietnamese, English) for every text a pass shows besides the member's own name, number and chapter.
TEXTS: dict[str, tuple[str, str]] = {
    "card_title": ("Thẻ hội viên", "Member card"),
    "description": ("Thẻ hội viên điện tử", "Digital member card"),
    "name": ("Họ và tên", "Name"),
    "member_number": ("Số hội viên", "Member number"),
    "chapter": ("Đơn vị", "Chapter"),
    "issued_on": ("Ngày cấp", "Issued on"),
    "valid_until": ("Giá trị đến", "Valid until"),
    "status": ("Trạng thái", "Status"),
    "status_active": ("Có hiệu lực", "Valid"),
    "status_suspended": ("Tạm ngưng", "Suspended"),
    "status_expired": ("Hết hạn", "Expired"),
    "status_revoked": ("Đã thu hồi", "Revoked"),
    "status_no_card": ("Chưa có thẻ", "No card"),
    "about": ("Về thẻ này", "About this card"),
    "about_text": ("Mã QR chứa thẻ hội viên đã ký: máy quét tại cửa kiểm tra thẻ mà không cần mạng. "
                   "Không chia sẻ mã này.",
                   "The QR code holds the signed member card: door scanners check it without a network. "
                   "Do not share it."),
}
LANGUAGES = ("vi", "en")


@dataclass(frozen=True, slots=True)
class WalletCard:
    """The member's card as a wallet pass shows it (data minimisation: what the printed card shows).

    Attributes:
        serial: The pass's random serial (never a member number or an ID number).
        qr_text: The card's digits-only QR text; None when there is no card a door would accept (revoked, none).
        state: ``active``, ``suspended``, ``expired``, ``revoked`` (also a member's card erased) or ``no_card``.
    """

    serial: str
    union_name: str
    full_name: str
    member_number: str
    chapter_name: str
    issued_on: date | None
    expires_on: date | None
    qr_text: str | None
    state: PassState

    @property
    def void(self) -> bool:
        """No door would accept this card again: the pass is voided."""
        return self.state in ("revoked", "no_card")


def status_texts(state: PassState) -> tuple[str, str]:
    """The card's status in Vietnamese and English."""
    return TEXTS[f"status_{state}"]


def day_text(day: date | None) -> str:
    """A date as the printed card writes it (dd/mm/yyyy); empty when there is none."""
    return day.strftime("%d/%m/%Y") if day else ""
