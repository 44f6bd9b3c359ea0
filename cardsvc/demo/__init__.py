"""Demo data for a first look: a central union, two provinces, communes, branches and 200 members."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.days import vietnam_today
from cardsvc.db.models import Chapter, Consent, Member, Officer
from cardsvc.security import PiiCipher
from cardsvc.services import chapters, consents, keys, members, officers
from cardsvc.services.context import Actor, system_actor

FAMILY_NAMES = ["Nguyễn", "Nguyễn", "Nguyễn", "Trần", "Trần", "Lê", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ",
                "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý", "Đinh", "Trương", "Lưu", "Cao"]
MIDDLE_NAMES = ["Thị", "Thị", "Thị", "Thị Thu", "Thị Ngọc", "Thị Minh", "Ngọc", "Thanh", "Thu", "Kim", "Hồng",
                "Bảo", "Phương", "Thị Kim", "Thị Thanh", "Diệu", "Mỹ"]
GIVEN_NAMES = ["Lan", "Hoa", "Hương", "Mai", "Linh", "Trang", "Thảo", "Hạnh", "Nga", "Hằng", "Yến", "Nhung",
               "Huyền", "Vy", "Anh", "Ngân", "Phượng", "Loan", "Thủy", "Dung", "Hiền", "Tuyết", "Xuân", "Quỳnh",
               "Oanh", "Diệp", "Giang", "Châu", "Trâm", "Nguyệt", "Đào", "Uyên", "Thư", "Ánh", "Duyên", "Liên"]

# (code, name, level, parent code, province code of its members' ID numbers)
CHAPTERS = [
    ("TW", "Trung ương Hội Liên hiệp Phụ nữ Việt Nam", "central", None, None),
    ("HNI", "Hội LHPN thành phố Hà Nội", "province", "TW", "001"),
    ("HCM", "Hội LHPN Thành phố Hồ Chí Minh", "province", "TW", "079"),
    ("HNI-BADINH", "Hội LHPN phường Ba Đình", "commune", "HNI", "001"),
    ("HNI-HOANKIEM", "Hội LHPN phường Hoàn Kiếm", "commune", "HNI", "001"),
    ("HNI-SOCSON", "Hội LHPN xã Sóc Sơn", "commune", "HNI", "001"),
    ("HCM-SAIGON", "Hội LHPN phường Sài Gòn", "commune", "HCM", "079"),
    ("HCM-BENTHANH", "Hội LHPN phường Bến Thành", "commune", "HCM", "079"),
    ("HCM-CUCHI", "Hội LHPN xã Củ Chi", "commune", "HCM", "079"),
]
BRANCHES_PER_COMMUNE = 2
MEMBER_COUNT = 200
ROOT_CODE = "TW"
# Every 10th demo member has not signed the identity-verification form; every 4th agreed to publication.
NO_IDENTITY_CONSENT_EVERY = 10
PUBLICATION_CONSENT_EVERY = 4
# Tone marks placed the old way ("Thuỷ"): a registry record and a member list often disagree on them.
DIACRITIC_VARIANTS = {"Thủy": "Thuỷ", "Hòa": "Hoà", "Thúy": "Thuý", "Khỏe": "Khoẻ"}


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str
    chapter_code: str | None


def _branches() -> list[tuple[str, str, str, str, str | None]]:
    rows = []
    for code, name, level, _parent, province in CHAPTERS:
        if level != "commune":
            continue
        place = name.split("phường ")[-1].split("xã ")[-1]
        for n in range(1, BRANCHES_PER_COMMUNE + 1):
            rows.append((f"{code}-{n:02d}", f"Chi hội Tổ dân phố số {n}, {place}", "branch", code, province))
    return rows


def _id_number(rng: random.Random, province: str, birth: date) -> str:
    century_digit = {19: 1, 20: 3}[birth.year // 100]  # odd digits: women
    return f"{province}{century_digit}{birth.year % 100:02d}{rng.randrange(10**6):06d}"


def _phone(rng: random.Random) -> str:
    return f"0{rng.choice(['32', '33', '34', '35', '36', '37', '38', '39', '86', '90', '91', '94', '96', '98'])}" \
           f"{rng.randrange(10**7):07d}"


def _logins_file(var_dir: Path) -> Path:
    return var_dir / "demo-logins.txt"


def _load_or_create_logins(var_dir: Path) -> list[DemoLogin]:
    """Demo passwords are random per installation and kept in var/ (mode 0600) so that reruns print the same."""
    path = _logins_file(var_dir)
    if path.is_file():
        logins = []
        for line in path.read_text().splitlines():
            username, password, role, chapter = line.split("\t")
            logins.append(DemoLogin(username, password, role, chapter or None))
        return logins
    logins = [
        DemoLogin("admin", secrets.token_urlsafe(12), "admin", None),
        DemoLogin("hanoi", secrets.token_urlsafe(12), "officer", "HNI"),
        DemoLogin("hcm.viewer", secrets.token_urlsafe(12), "viewer", "HCM"),
    ]
    var_dir.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text("".join(f"{x.username}\t{x.password}\t{x.role}\t{x.chapter_code or ''}\n" for x in logins))
    return logins


def load_demo(session: Session, cipher: PiiCipher, kek: bytes, var_dir: Path, *, today: date | None = None
              ) -> tuple[list[DemoLogin], bool]:
    """Load the demo data (chapters, members, officers, signing keys) unless it is there already.

    Returns the demo logins and whether anything was created."""
    actor = system_actor("demo")
    today = today or vietnam_today()
    created = False
    ids: dict[str, int] = {
        code: chapter_id for code, chapter_id in session.execute(select(Chapter.code, Chapter.id))
    }
    for code, name, level, parent, _province in [*CHAPTERS, *_branches()]:
        if code not in ids:
            chapter = chapters.create_chapter(session, actor, code=code, name=name, level=level,
                                              parent_id=ids[parent] if parent else None)
            ids[code] = chapter.id
            created = True
    branch_rows = _branches()
    existing = session.scalar(
        select(Member.id).join(Member.chapter).where(Chapter.code.in_([b[0] for b in branch_rows])).limit(1)
    )
    if existing is None:
        rng = random.Random(2025)  # noqa: S311  (demo data, not secrets)
        for n in range(MEMBER_COUNT):
            branch_code, _name, _level, _parent, province = branch_rows[n % len(branch_rows)]
            birth = date(rng.randrange(1950, 2004), rng.randrange(1, 13), rng.randrange(1, 29))
            join = max(birth + timedelta(days=365 * 18 + 5), date(1995, 1, 1)) + timedelta(days=rng.randrange(2000))
            fields: dict[str, object] = {
                "full_name": f"{rng.choice(FAMILY_NAMES)} {rng.choice(MIDDLE_NAMES)} {rng.choice(GIVEN_NAMES)}",
                "birth_date": birth,
                "gender": "female",
                "id_number": _id_number(rng, province or "001", birth),
                "phone": _phone(rng),
                "join_date": min(join, today),
            }
            members.create_member(session, actor, cipher, chapter_id=ids[branch_code], fields=fields)
        created = True
    if _record_demo_consents(session, actor):
        created = True
    for purpose in ("trust", "card"):
        if keys.active_key(session, purpose) is None:
            keys.create_key(session, actor, kek, purpose=purpose)
            created = True
    logins = _load_or_create_logins(var_dir)
    for login in logins:
        if session.scalar(select(Officer.id).where(Officer.username == login.username)) is None:
            officers.create_officer(
                session, actor, username=login.username, password=login.password, role=login.role,
                chapter_id=ids[login.chapter_code] if login.chapter_code else None,
                full_name={"admin": "Quản trị viên", "hanoi": "Cán bộ Hội Hà Nội"}.get(login.username, ""),
                permissions=["pii"] if login.role == "admin" else [],
            )
            created = True
    return logins, created


def demo_members(session: Session) -> list[Member]:
    branch_codes = [b[0] for b in _branches()]
    return list(session.scalars(
        select(Member).join(Member.chapter).where(Chapter.code.in_(branch_codes)).order_by(Member.id)
    ))


def _record_demo_consents(session: Session, actor: Actor) -> bool:
    """Paper-form consents for most demo members (a member who ever consented or withdrew is left alone)."""
    recorded = {(member_id, purpose) for member_id, purpose in session.execute(select(Consent.member_id,
                                                                                       Consent.purpose))}
    added = 0
    for n, member in enumerate(demo_members(session)):
        wanted = [] if n % NO_IDENTITY_CONSENT_EVERY == NO_IDENTITY_CONSENT_EVERY - 1 else ["identity_verification"]
        if n % PUBLICATION_CONSENT_EVERY == 0:
            wanted.append("registry_publication")
        for purpose in wanted:
            if (member.id, purpose) in recorded:
                continue
            consents.record_consent(session, actor, member.id, purpose=purpose, method="paper_form",
                                    evidence_ref=f"DEMO-PHIEU-{member.member_number}")
            added += 1
    return added > 0
