"""Renderings of issued cards: the QR text, QR images, the CR80 card PDF and A4 sheets."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from cardsvc.db.models import Card, Chapter
from cardsvc.settings import Settings
from issuance.credential import credential_qr_text
from issuance.pdfstream import write_sheet_archive
from issuance.printing import CardFace, card_pdf, sheets_pdf
from issuance.render import qr_png, qr_svg, qr_version


@dataclass(frozen=True)
class CredentialView:
    card_id: str
    qr_text: str
    credential_hex: str
    size_bytes: int
    qr_version: int


def credential_of(card: Card) -> CredentialView:
    text = credential_qr_text(card.credential)
    return CredentialView(card_id=card.card_id, qr_text=text, credential_hex=card.credential.hex(),
                          size_bytes=len(card.credential), qr_version=qr_version(text))


def card_qr_png(card: Card) -> bytes:
    return qr_png(credential_qr_text(card.credential))


def card_qr_svg(card: Card) -> str:
    return qr_svg(credential_qr_text(card.credential))


def face_of(card: Card, settings: Settings) -> CardFace:
    member = card.member
    return CardFace(
        union_name=settings.union_name, full_name=member.full_name, member_number=member.member_number,
        chapter_name=member.chapter.name, issued_on=card.issued_on, expires_on=card.expires_on,
        qr_text=credential_qr_text(card.credential),
    )


def card_pdf_of(card: Card, settings: Settings) -> bytes:
    return card_pdf(face_of(card, settings))


def sheets_pdf_of(cards: Sequence[Card], settings: Settings) -> bytes:
    return sheets_pdf([face_of(card, settings) for card in cards])


def write_sheet_archive_of(chapters: Iterable[tuple[Chapter, Iterator[Card]]], settings: Settings,
                           out: BinaryIO) -> int:
    """A job's A4 sheets as a ZIP of one PDF per chapter, written as a stream (:mod:`issuance.pdfstream`)."""
    return write_sheet_archive(
        out, ((chapter.code, (face_of(card, settings) for card in cards)) for chapter, cards in chapters))
