"""The development registry: what a development or test service uses in place of the national population registry.

The in-process stub (``CARDSVC_REGISTRY_MODE=stub``) and ``cardsvc fake-registry`` know the members in the database,
with the demo's deliberate trouble (:func:`registry_records`); an ``http`` registry without keys uses the fake
registry's. :func:`cardsvc.registry.registry_for` injects :func:`development_registry` outside production only.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cardsvc.db.models import Member
from cardsvc.demo import DIACRITIC_VARIANTS, NO_IDENTITY_CONSENT_EVERY, demo_members
from cardsvc.security import PiiCipher
from cardsvc.services.identity.gateway import DevelopmentRegistry, member_birth_date
from cardsvc.settings import Settings
from integrations.population import Gender, PersonName, PersonRecord
from integrations.population.fake_server import DEFAULT_CREDENTIALS

log = logging.getLogger("cardsvc.identity")


def development_registry() -> DevelopmentRegistry:
    """The fake registry's keys and the records of the members in the database."""
    return DevelopmentRegistry(DEFAULT_CREDENTIALS.access_key, DEFAULT_CREDENTIALS.secret_key,
                               records_from_database)


def records_from_database(settings: Settings) -> list[PersonRecord]:
    """:func:`registry_records` of the database the settings name, read once now."""
    from cardsvc.db.session import make_engine

    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            return registry_records(session, PiiCipher.from_settings(settings))
    except SQLAlchemyError:
        # A database that is not migrated yet: the stub starts empty rather than failing the application.
        log.warning("the registry stub could not read the members table; it knows no member")
        return []
    finally:
        engine.dispose()


def member_person_record(member: Member, cipher: PiiCipher) -> PersonRecord | None:
    """The registry record that agrees exactly with a member (for the stub and the fake registry)."""
    if member.id_number_ciphertext is None:
        return None
    old = cipher.decrypt("old_id_number", member.old_id_number_ciphertext) if member.old_id_number_ciphertext \
        else None
    gender: Gender = "male" if member.gender == "male" else "female"
    return PersonRecord(cipher.decrypt("id_number", member.id_number_ciphertext), PersonName.split(member.full_name),
                        member_birth_date(member), gender, old)


def registry_records(session: Session, cipher: PiiCipher) -> list[PersonRecord]:
    """Registry records for the stub and the fake registry: every member with an ID number, as recorded — except a
    few demo members, so that a sync fills the review queue the way real data would:

    * the first demo member whose given name has a common variant: the registry spells it with other diacritics;
    * the first with two middle names: the registry has them the other way round;
    * the 6th demo member (who consented): the registry records her death;
    * the 9th: unknown to the registry (a mistyped number).
    """
    records = {member.id: record for member in session.scalars(select(Member).order_by(Member.id))
               if (record := member_person_record(member, cipher)) is not None}
    demo = [m for n, m in enumerate(demo_members(session))
            if n % NO_IDENTITY_CONSENT_EVERY != NO_IDENTITY_CONSENT_EVERY - 1 and m.id in records]
    if len(demo) < 10:
        return list(records.values())
    diacritics = next((m for m in demo if m.full_name.split()[-1] in DIACRITIC_VARIANTS), None)
    swapped = next((m for m in demo if len(m.full_name.split()) == 4 and m is not diacritics), None)
    if diacritics is not None:
        name = records[diacritics.id].name
        records[diacritics.id] = replace(records[diacritics.id], name=PersonName(
            name.family, name.middle, DIACRITIC_VARIANTS[name.given]))
    if swapped is not None:
        name = records[swapped.id].name
        records[swapped.id] = replace(records[swapped.id], name=PersonName(
            name.family, " ".join(reversed(name.middle.split())), name.given))
    taken = {m.id for m in (diacritics, swapped) if m is not None}
    others = [m for m in demo if m.id not in taken]
    records[others[5].id] = replace(records[others[5].id], death_date=date(2025, 9, 2))
    del records[others[8].id]
    return list(records.values())
