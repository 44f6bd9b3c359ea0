"""Name comparison the way the registry exchange does it (DOMAIN.md §3).

Both names are NFC-normalised and case-folded, and whitespace is ignored (doubled, leading, trailing or missing
spaces do not count). Anything else is a mismatch, including swapped middle names ("Thị Phương" vs "Phương Thị").
When the names differ only in diacritics — tone marks, circumflex/breve/horn, đ/d, or the old and new tone mark
placement ("Hoà" vs "Hòa") — the result is still a mismatch, flagged ``diacritics_only`` so an officer sees it is
probably a typing issue.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from integrations.population.models import FieldMatch, PersonName

__all__ = ["NameComparison", "compare_names", "fold_diacritics", "normalise_name"]

# đ/Đ do not decompose under NFD, so they are mapped explicitly.
_D_MAP = str.maketrans({"đ": "d", "Đ": "D"})


def normalise_name(name: str) -> str:
    """NFC, case-folded, with every whitespace run removed: the form two names are compared in."""
    return "".join(unicodedata.normalize("NFC", name).casefold().split())


def fold_diacritics(name: str) -> str:
    """:func:`normalise_name` without any diacritic: ``"Nguyễn Thị Đào"`` → ``"nguyenthidao"``."""
    decomposed = unicodedata.normalize("NFD", name.translate(_D_MAP))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return normalise_name(stripped)


@dataclass(frozen=True, slots=True)
class NameComparison:
    """Result of :func:`compare_names`."""

    match: FieldMatch
    diacritics_only: bool = False


def compare_names(claimed: str, registry: PersonName) -> NameComparison:
    """Compare a full name as written by the member with the registry's split name.

    Args:
        claimed: the full name, family name first (any Unicode normalisation, any case and spacing).
        registry: the registry's name (Ho / ChuDem / Ten).

    Returns:
        ``match``; or ``mismatch`` with ``diacritics_only`` set when only diacritics differ; or ``unknown`` when
        either name is empty.
    """
    registry_full = registry.full
    if not normalise_name(claimed) or not normalise_name(registry_full):
        return NameComparison(FieldMatch.UNKNOWN)
    if normalise_name(claimed) == normalise_name(registry_full):
        return NameComparison(FieldMatch.MATCH)
    return NameComparison(FieldMatch.MISMATCH, fold_diacritics(claimed) == fold_diacritics(registry_full))
