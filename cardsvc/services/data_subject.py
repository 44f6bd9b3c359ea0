"""Data-subject requests under Law 91/2025 (DOMAIN.md §8): export everything held about a member, and erase it.

Export gathers the member row (ID and phone numbers in clear, so the ``pii`` permission is required), her status
history, consents, cards (ids, dates, statuses — not the credential bytes), check-ins, the audit entries about her or
her cards, consents and links (a batch chunk's ``card.batch_issue`` entry cut down to her cards), identity checks
and reviews, her card links and her wallet pass (when it was added and the devices registered for it, never their
identifiers). It is audited as ``member.export``.

Erasure is for members who have left or died (an active or suspended member is refused with 409 ``member_active``:
change her status first, which the ordinary status history records). It revokes her current card and wipes the
stored credential bytes of every card (they carry her name), removes both ID numbers and the phone number
(ciphertext, blind index, mask) and the free-text reasons; keeps only the birth year; replaces the name with
``Đã xoá #<member id>``; withdraws her consents and revokes her card links; burns her unused live-card activation
codes. Her wallet pass gets an update (in the erasure's transaction, through the outbox): the phone's pass comes back
voided under the erased name and the Google object ``INACTIVE`` likewise, after which the worker forgets the Apple
devices registered for it (their push tokens) — see :mod:`cardsvc.services.wallet_updates`. Attendance rows stay:
they hold only the member id, which now points at an anonymous member, so event statistics keep adding up.
The audit log keeps its entries (it never holds personal values). Erasure is audited as ``member.erase`` and is
idempotent: erasing an erased member changes nothing and says so.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import (
    AuditEntry,
    BindingCode,
    Card,
    Checkin,
    Consent,
    Event,
    IdentityReview,
    IdentitySyncItem,
    JobChunk,
    Member,
    MemberLink,
    MembershipPublication,
    MemberStatusChange,
    SigningKey,
    Station,
    WalletPass,
    WalletRegistration,
)
from cardsvc.errors import Conflict, PermissionDenied
from cardsvc.normalize import given_name_sort_key, name_search_key
from cardsvc.security import PiiCipher
from cardsvc.services import audit, status_lists, wallet_outbox
from cardsvc.services.cards import current_card
from cardsvc.services.context import Actor
from cardsvc.services.members import get_member
from cardsvc.services.pii import stored_value

ERASABLE_STATUSES = frozenset({"left", "deceased"})
ERASED_NAME = "Đã xoá #{member_id}"
EXPORT_FORMAT_VERSION = 1


def erased_name(member_id: int) -> str:
    return ERASED_NAME.format(member_id=member_id)


def is_erased(member: Member) -> bool:
    return member.full_name == erased_name(member.id) and member.id_number_index is None


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_member(session: Session, actor: Actor, cipher: PiiCipher, member_id: int, *, fmt: str = "json"
                  ) -> dict[str, Any]:
    """Everything held about one member, as JSON-ready values. Audited (``member.export``) and committed.

    Raises:
        NotFound: no such member in the actor's scope.
        PermissionDenied: the actor lacks the ``pii`` permission (``pii_permission_required``).
    """
    member = get_member(session, actor, member_id)
    if not actor.has("pii"):
        raise PermissionDenied("a data export shows ID numbers in clear and needs the pii permission",
                               code="pii_permission_required")
    export = {
        "format_version": EXPORT_FORMAT_VERSION,
        "generated_at": _iso(utcnow()),
        "member": _member_section(member, cipher),
        "status_history": _status_history(session, member.id),
        "consents": _consents(session, member.id),
        "cards": _cards(session, member.id),
        "checkins": _checkins(session, member.id),
        "identity_checks": _identity_checks(session, member.id),
        "identity_reviews": _identity_reviews(session, member.id),
        "registry_publication": _publication(session, member.id),
        "member_links": _links(session, member.id),
        "wallet_pass": _wallet_pass(session, member.id),
    }
    # The audit entries are read before this export's own entry is written; the entry is the export's receipt.
    export["audit_entries"] = _audit_entries(session, member.id, export)
    audit.record(session, actor, "member.export", target_type="member", target_id=member.id,
                 chapter_path=member.chapter.path, details={"format": fmt})
    session.commit()
    return export


def _member_section(member: Member, cipher: PiiCipher) -> dict[str, Any]:
    year_only = member.birth_date_precision == "year"
    return {
        "id": member.id,
        "member_number": member.member_number,
        "full_name": member.full_name,
        "birth_date": str(member.birth_date.year) if year_only else _iso(member.birth_date),
        "birth_date_precision": member.birth_date_precision,
        "gender": member.gender,
        "id_number": stored_value(member, "id_number", cipher),
        "old_id_number": stored_value(member, "old_id_number", cipher),
        "phone": stored_value(member, "phone", cipher),
        "chapter": {"id": member.chapter.id, "code": member.chapter.code, "name": member.chapter.name},
        "join_date": _iso(member.join_date),
        "status": member.status,
        "status_reason": member.status_reason,
        "status_changed_on": _iso(member.status_changed_on),
        "honorary": member.honorary,
        "created_at": _iso(member.created_at),
        "updated_at": _iso(member.updated_at),
    }


def _status_history(session: Session, member_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(MemberStatusChange).where(MemberStatusChange.member_id == member_id)
                           .order_by(MemberStatusChange.id))
    return [{"from_status": r.from_status, "to_status": r.to_status, "reason": r.reason,
             "effective_on": _iso(r.effective_on), "officer_id": r.officer_id, "recorded_at": _iso(r.created_at)}
            for r in rows]


def _consents(session: Session, member_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(Consent).where(Consent.member_id == member_id).order_by(Consent.id))
    return [{"id": c.id, "purpose": c.purpose, "method": c.method, "evidence_ref": c.evidence_ref,
             "recorded_at": _iso(c.recorded_at), "recorded_by_id": c.recorded_by_id,
             "withdrawn_at": _iso(c.withdrawn_at), "withdrawal_note": c.withdrawal_note} for c in rows]


def _cards(session: Session, member_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Card.card_id, Card.version, Card.issued_on, Card.expires_on, Card.status, Card.status_reason,
               Card.status_changed_at, Card.created_at, SigningKey.kid)
        .join(SigningKey, SigningKey.id == Card.signing_key_id)
        .where(Card.member_id == member_id).order_by(Card.id)
    )
    return [{"card_id": r.card_id, "version": r.version, "issued_on": _iso(r.issued_on),
             "expires_on": _iso(r.expires_on), "status": r.status, "status_reason": r.status_reason,
             "status_changed_at": _iso(r.status_changed_at), "created_at": _iso(r.created_at), "key_id": r.kid}
            for r in rows]


def _checkins(session: Session, member_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Checkin, Event.title, Station.name)
        .join(Event, Event.id == Checkin.event_id)
        .outerjoin(Station, Station.id == Checkin.station_id)
        .where(Checkin.member_id == member_id).order_by(Checkin.id)
    )
    return [{"event_id": c.event_id, "event_title": title, "result": c.result, "reason": c.reason,
             "direction": c.direction, "source": c.source, "station": station, "card_id": c.card_id,
             "scanned_at": _iso(c.scanned_at), "received_at": _iso(c.received_at),
             "manual_reason": c.manual_reason} for c, title, station in rows]


def _identity_checks(session: Session, member_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(IdentitySyncItem).where(IdentitySyncItem.member_id == member_id)
                           .order_by(IdentitySyncItem.id))
    return [{"run_id": i.run_id, "status": i.status, "outcome": i.outcome, "differing_fields": i.differing_fields,
             "checked_at": _iso(i.checked_at)} for i in rows]


def _identity_reviews(session: Session, member_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(IdentityReview).where(IdentityReview.member_id == member_id)
                           .order_by(IdentityReview.id))
    return [{"id": r.id, "source": r.source, "kind": r.kind, "status": r.status,
             "differing_fields": r.differing_fields, "registry_values": r.registry_values,
             "new_id_number_pending": r.new_id_number_ciphertext is not None, "note": r.note,
             "created_at": _iso(r.created_at), "decided_at": _iso(r.decided_at)} for r in rows]


def _publication(session: Session, member_id: int) -> dict[str, Any] | None:
    row = session.scalar(select(MembershipPublication).where(MembershipPublication.member_id == member_id))
    if row is None:
        return None
    return {"published_at": _iso(row.published_at), "withdrawn_at": _iso(row.withdrawn_at), "card_id": row.card_id}


def _publication_active(session: Session, member_id: int) -> bool:
    return session.scalar(select(MembershipPublication.id).where(
        MembershipPublication.member_id == member_id, MembershipPublication.withdrawn_at.is_(None))) is not None


def _links(session: Session, member_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(MemberLink).where(MemberLink.member_id == member_id).order_by(MemberLink.id))
    return [{"id": link.id, "channel": link.channel, "created_at": _iso(link.created_at),
             "revoked_at": _iso(link.revoked_at), "last_used_at": _iso(link.last_used_at)} for link in rows]


def _audit_entries(session: Session, member_id: int, export: dict[str, Any]) -> list[dict[str, Any]]:
    """Entries whose target is the member, one of her cards, consents, links or reviews, or that name her."""
    targets = [("member", [str(member_id)]),
               ("card", [c["card_id"] for c in export["cards"]]),
               ("consent", [str(c["id"]) for c in export["consents"]]),
               ("member_link", [str(link["id"]) for link in export["member_links"]]),
               ("identity_review", [str(r["id"]) for r in export["identity_reviews"]])]
    conditions = [and_(AuditEntry.target_type == kind, AuditEntry.target_id.in_(ids)) for kind, ids in targets if ids]
    # Manual check-ins are audited against the event with the member in the details.
    event_ids = sorted({str(c["event_id"]) for c in export["checkins"] if c["source"] == "manual"})
    if event_ids:
        conditions.append(and_(AuditEntry.target_type == "event", AuditEntry.action == "checkin.manual",
                               AuditEntry.target_id.in_(event_ids)))
    rows = session.scalars(select(AuditEntry).where(or_(*conditions)).order_by(AuditEntry.id))
    entries = [(e, e.details) for e in rows
               if e.target_type != "event" or (e.details or {}).get("member_id") == member_id]
    entries += _batch_issue_entries(session, member_id)
    return [{"at": _iso(e.at), "action": e.action, "actor_type": e.actor_type, "actor_name": e.actor_name,
             "target_type": e.target_type, "target_id": e.target_id, "details": details}
            for e, details in sorted(entries, key=lambda entry: entry[0].id or 0)]


def _batch_issue_entries(session: Session, member_id: int) -> list[tuple[AuditEntry, dict[str, Any]]]:
    """The ``card.batch_issue`` entries of the batch chunks that issued her cards, each with its details cut down to
    her cards: an entry names every card of a chunk, other members' among them (docs/scale.md §5)."""
    cards = session.execute(select(Card.card_id, Card.job_id).where(Card.member_id == member_id,
                                                                    Card.job_id.is_not(None))).all()
    if not cards:
        return []
    mine = {card_id for card_id, _ in cards}
    job_ids = sorted({job_id for _, job_id in cards if job_id is not None})
    # A chunk is a range of the member ids its cards went to: hers, or a record merged into her since.
    ids = [member_id, *session.scalars(select(Member.id).where(Member.merged_into_id == member_id))]
    chunk_ids = list(session.scalars(select(JobChunk.id).where(
        JobChunk.job_id.in_(job_ids),
        or_(*(and_(JobChunk.first_member_id <= i, JobChunk.last_member_id >= i) for i in ids)))))
    if not chunk_ids:
        return []
    rows = session.scalars(select(AuditEntry).where(
        AuditEntry.action == "card.batch_issue", AuditEntry.target_type == "job",
        AuditEntry.target_id.in_([str(job_id) for job_id in job_ids]),
        AuditEntry.details["chunk"].as_integer().in_(chunk_ids)))
    found: list[tuple[AuditEntry, dict[str, Any]]] = []
    for entry in rows:
        named = [row for row in (entry.details or {}).get("cards", []) if row[0] in mine]
        if named:
            found.append((entry, {**{k: v for k, v in entry.details.items() if k != "cards"}, "cards": named}))
    return found


def _wallet_pass(session: Session, member_id: int) -> dict[str, Any] | None:
    row = session.scalar(select(WalletPass).where(WalletPass.member_id == member_id))
    if row is None:
        return None
    devices = session.scalars(select(WalletRegistration.created_at).where(WalletRegistration.pass_id == row.id)
                              .order_by(WalletRegistration.id)).all()
    return {"apple_added_at": _iso(row.apple_issued_at), "google_added_at": _iso(row.google_issued_at),
            "last_updated_at": _iso(row.modified_at),
            "apple_devices_registered_at": [_iso(at) for at in devices]}


@dataclass(frozen=True)
class ErasureResult:
    member_id: int
    already_erased: bool
    cards_revoked: int
    credentials_wiped: int
    consents_withdrawn: int
    links_revoked: int


def erase_member(session: Session, actor: Actor, member_id: int) -> ErasureResult:
    """Erase a former member's personal data (see the module docstring for what stays). Audited, committed.

    Raises:
        NotFound: no such member in the actor's scope.
        PermissionDenied: a read-only account.
        Conflict: the member is active or suspended (``member_active``), or her membership is still published in
            the national registry (``registry_publication_active``).
    """
    actor.require_write()
    member = get_member(session, actor, member_id)
    if member.status not in ERASABLE_STATUSES:
        raise Conflict("only a member who has left or died can be erased; record that status first",
                       code="member_active", details={"status": member.status})
    if is_erased(member):
        return ErasureResult(member.id, True, 0, 0, 0, 0)
    if _publication_active(session, member.id):
        # Withdrawing the published membership needs her ID number, which erasure removes: withdraw first.
        raise Conflict("her membership is still published in the national registry; withdraw it first "
                       "(POST /v1/identity/publish for her chapter), then erase", code="registry_publication_active")
    now = utcnow()
    cards_revoked = 0
    card = current_card(session, member.id)
    if card is not None:
        status_lists.set_card_status(session, card, "revoked", reason=member.status, note=None)
        audit.record(session, actor, "card.revoke", target_type="card", target_id=card.card_id,
                     chapter_path=member.chapter.path, details={"reason": member.status, "erasure": True})
        cards_revoked = 1
    wiped = _rowcount(session.execute(
        update(Card).where(Card.member_id == member.id, Card.credential != b"").values(credential=b"")
        .execution_options(synchronize_session="fetch")
    ))
    withdrawn = _rowcount(session.execute(
        update(Consent).where(Consent.member_id == member.id, Consent.withdrawn_at.is_(None))
        .values(withdrawn_at=now, withdrawn_by_id=actor.id, withdrawal_note="erasure")
        .execution_options(synchronize_session="fetch")
    ))
    links = _rowcount(session.execute(
        update(MemberLink).where(MemberLink.member_id == member.id, MemberLink.revoked_at.is_(None))
        .values(revoked_at=now).execution_options(synchronize_session="fetch")
    ))
    # Her live card cannot be activated any more (the binding itself ended with the card's revocation).
    session.execute(update(BindingCode).where(BindingCode.member_id == member.id, BindingCode.used_at.is_(None))
                    .values(used_at=now).execution_options(synchronize_session="fetch"))
    # Free text typed by officers may name her, her family or her new address.
    session.execute(update(MemberStatusChange).where(MemberStatusChange.member_id == member.id)
                    .values(reason=None).execution_options(synchronize_session="fetch"))
    session.execute(update(Checkin).where(Checkin.member_id == member.id).values(manual_reason=None)
                    .execution_options(synchronize_session="fetch"))
    session.execute(update(IdentityReview).where(IdentityReview.member_id == member.id)
                    .values(registry_values={}, new_id_number_ciphertext=None, note=None)
                    .execution_options(synchronize_session="fetch"))
    name = erased_name(member.id)
    member.full_name = name
    member.name_search = name_search_key(name)
    member.sort_key = given_name_sort_key(name)
    member.birth_date = date(member.birth_date.year, 1, 1)
    member.birth_date_precision = "year"
    member.status_reason = None
    for field in ("id_number", "old_id_number", "phone"):
        setattr(member, f"{field}_ciphertext", None)
        setattr(member, f"{field}_index", None)
        setattr(member, f"{field}_masked", None)
    # Her wallet pass shows her name: it is sent again as it is now (voided, under the erased name), whether or not
    # a card was revoked above (a pending update already queued rides along). Sending it also forgets her devices.
    wallet_outbox.card_changed(session, member.id)
    result = ErasureResult(member.id, False, cards_revoked, wiped, withdrawn, links)
    audit.record(session, actor, "member.erase", target_type="member", target_id=member.id,
                 chapter_path=member.chapter.path,
                 details={"cards_revoked": cards_revoked, "credentials_wiped": wiped,
                          "consents_withdrawn": withdrawn, "links_revoked": links})
    session.commit()
    return result


def _rowcount(result: Any) -> int:
    """Rows an UPDATE changed (a ``CursorResult``; the typed ``Result`` does not declare ``rowcount``)."""
    count: int = result.rowcount
    return count


def export_pdf(export: dict[str, Any], *, union_name: str, font_dirs: tuple[Path, ...] | None = None) -> bytes:
    """A printable A4 summary of an export (DejaVu Sans, so Vietnamese prints intact).

    Raises:
        FontNotFoundError: DejaVu Sans is not installed.
    """
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from issuance.printing import DEFAULT_FONT_DIRS, _load_fonts

    fonts = _load_fonts(tuple(font_dirs or DEFAULT_FONT_DIRS))
    body = ParagraphStyle("body", fontName=fonts.regular, fontSize=9, leading=12)
    heading = ParagraphStyle("heading", fontName=fonts.bold, fontSize=12, leading=16, spaceBefore=8, spaceAfter=4)
    title = ParagraphStyle("title", fontName=fonts.bold, fontSize=15, leading=20, spaceAfter=6)

    def text(value: object) -> Paragraph:
        return Paragraph(escape("" if value is None else str(value)), body)

    def table(rows: list[list[object]], widths: list[float]) -> Table:
        grid = Table([[text(cell) for cell in row] for row in rows], colWidths=widths, repeatRows=1)
        grid.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                                  ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef7")),
                                  ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        return grid

    member = export["member"]
    story: list[Any] = [
        Paragraph(escape(union_name), heading),
        Paragraph("Dữ liệu cá nhân của hội viên — Personal data held about a member", title),
        text(f"Lập lúc / generated at: {export['generated_at']} (Luật 91/2025/QH15)"),
        Spacer(1, 4 * mm),
        Paragraph("Hội viên / Member", heading),
        table([["Trường / field", "Giá trị / value"]] + [[k, v] for k, v in member.items() if k != "chapter"]
              + [["chapter", f"{member['chapter']['code']} — {member['chapter']['name']}"]], [50 * mm, 120 * mm]),
    ]
    sections: list[tuple[str, str, list[str]]] = [
        ("status_history", "Lịch sử trạng thái / Status history",
         ["effective_on", "from_status", "to_status", "reason"]),
        ("consents", "Đồng ý / Consents", ["purpose", "method", "recorded_at", "withdrawn_at"]),
        ("cards", "Thẻ / Cards", ["card_id", "issued_on", "expires_on", "status", "status_reason"]),
        ("checkins", "Điểm danh / Check-ins", ["received_at", "event_title", "result", "reason"]),
        ("identity_checks", "Xác thực danh tính / Identity checks", ["checked_at", "outcome", "differing_fields"]),
        ("identity_reviews", "Đối chiếu / Identity reviews", ["created_at", "kind", "status", "differing_fields"]),
        ("member_links", "Liên kết thẻ số / Card links", ["created_at", "channel", "revoked_at"]),
        ("audit_entries", "Nhật ký truy cập / Audit entries", ["at", "action", "actor_name", "target_type"]),
    ]
    for key, label, columns in sections:
        rows = export.get(key) or []
        story.append(Paragraph(f"{escape(label)} ({len(rows)})", heading))
        if rows:
            width = 170 * mm / len(columns)
            story.append(table([list(columns)] + [[row.get(c) for c in columns] for row in rows],
                               [width] * len(columns)))
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=15 * mm,
                            bottomMargin=15 * mm, title="cardsvc data export", creator="cardsvc", invariant=1)
    doc.build(story)
    return out.getvalue()
