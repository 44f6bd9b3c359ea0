"""Why the QR text is digits only: a keyboard-wedge scanner types it through the host's input method and layout.

A wedge scanner "types" the decoded text key by key into whatever has focus. On Vietnamese PCs an input method
(Unikey, EVKey) in Telex or VNI mode rewrites those keys. This module models both input methods closely enough to
type real names, and shows that the digits-only card text passes untouched while base64 / base45 renderings of the
same bytes are rewritten.

The models follow Unikey with the old tone placement ("hòa") and spell checking off (the worst case: marks apply
wherever a vowel precedes the key), and leave out its rarer conveniences (``ww`` undo, free tone placement after the
final consonant, "z" / "0" to remove marks).
"""

from __future__ import annotations

import base64
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from issuance.credential import credential_qr_text, sign_credential
from tests.vectors import make_vectors
from verification.format import ALG_EDDSA, credential_from_text

# Combining marks: tones (sắc, huyền, hỏi, ngã, nặng) and vowel modifiers (circumflex, breve, horn).
ACUTE, GRAVE, HOOK, TILDE, DOT = "\u0301", "\u0300", "\u0309", "\u0303", "\u0323"
TONES = {ACUTE, GRAVE, HOOK, TILDE, DOT}
CIRCUMFLEX, BREVE, HORN = "\u0302", "\u0306", "\u031b"
TELEX_TONES = {"s": ACUTE, "f": GRAVE, "r": HOOK, "x": TILDE, "j": DOT}
VNI_TONES = {"1": ACUTE, "2": GRAVE, "3": HOOK, "4": TILDE, "5": DOT}
VNI_MODIFIERS = {"6": (CIRCUMFLEX, "aeo"), "7": (HORN, "ou"), "8": (BREVE, "a")}
BASE_VOWELS = "aeiouy"


def _parts(char: str) -> tuple[str, str, str]:
    """(base letter, modifier mark, tone mark) of one precomposed character."""
    decomposed = unicodedata.normalize("NFD", char)
    modifier = "".join(mark for mark in decomposed[1:] if mark in (CIRCUMFLEX, BREVE, HORN))
    tone = "".join(mark for mark in decomposed[1:] if mark in TONES)
    return decomposed[0], modifier, tone


def _compose(base: str, modifier: str, tone: str) -> str:
    return unicodedata.normalize("NFC", base + modifier + tone)


def _is_vowel(char: str) -> bool:
    return _parts(char)[0].lower() in BASE_VOWELS


def _is_letter(char: str) -> bool:
    return char.isalpha() and (char.isascii() or _parts(char)[0].isascii())


class InputMethod:
    """A word buffer that receives keystrokes and rewrites the current word like Unikey does."""

    def __init__(self) -> None:
        self.output: list[str] = []

    def type_text(self, keys: str) -> str:
        """Feed ``keys`` one keystroke at a time (as a wedge scanner does) and return what lands in the field."""
        for key in keys:
            self.press(key)
        return "".join(self.output)

    def press(self, key: str) -> None:
        self.output.append(key)

    def _word_start(self) -> int:
        start = len(self.output)
        while start > 0 and _is_letter(self.output[start - 1]):
            start -= 1
        return start

    def _vowels(self) -> list[int]:
        """Positions of the vowels of the current word ("qu" and "gi" + vowel count as consonants)."""
        start = self._word_start()
        word = [char.lower() for char in self.output[start:]]
        positions = []
        for offset, char in enumerate(word):
            if not _is_vowel(char):
                continue
            before = word[offset - 1] if offset else ""
            after_is_vowel = offset + 1 < len(word) and _is_vowel(word[offset + 1])
            if (char == "u" and before == "q") or (char == "i" and before == "g" and after_is_vowel):
                continue
            positions.append(start + offset)
        return positions

    def _tone_position(self) -> int | None:
        vowels = self._vowels()
        if not vowels:
            return None
        cluster = [vowels[-1]]
        while len(cluster) < len(vowels) and vowels[-len(cluster) - 1] == cluster[0] - 1:
            cluster.insert(0, vowels[-len(cluster) - 1])
        modified = [at for at in cluster if _parts(self.output[at])[1]]
        if modified:
            return modified[-1]
        if cluster[-1] != len(self.output) - 1 or len(cluster) == 1:
            return cluster[-1]  # followed by a final consonant, or a single vowel
        return cluster[1] if len(cluster) == 3 else cluster[0]

    def apply_tone(self, key: str, tone: str) -> bool:
        at = self._tone_position()
        if at is None:
            return False
        base, modifier, current = _parts(self.output[at])
        if current == tone:  # the same tone key twice: undo the tone and type the key itself
            self.output[at] = _compose(base, modifier, "")
            self.output.append(key)
            return True
        self.output[at] = _compose(base, modifier, tone)
        return True

    def apply_modifier(self, modifier: str, bases: str) -> bool:
        """Put ``modifier`` on the last vowel of the word whose base is in ``bases`` (``uo`` + horn: both)."""
        for at in reversed(self._vowels()):
            base, current, tone = _parts(self.output[at])
            if base.lower() in bases and not current:
                self.output[at] = _compose(base, modifier, tone)
                before = self.output[at - 1] if at else ""
                if modifier == HORN and base.lower() == "o" and _parts(before)[0].lower() == "u" and before.isalpha():
                    self.output[at - 1] = _compose(_parts(before)[0], HORN, _parts(before)[2])
                return True
        return False

    def stroke_d(self) -> bool:
        """dd (Telex) or d9 (VNI): the word's d becomes đ."""
        start = self._word_start()
        for at in range(start, len(self.output)):
            if self.output[at] in "dD":
                self.output[at] = "đ" if self.output[at] == "d" else "Đ"
                return True
        return False


class Telex(InputMethod):
    def press(self, key: str) -> None:
        lower = key.lower()
        last = _parts(self.output[-1])[0].lower() if self.output and _is_letter(self.output[-1]) else ""
        last_mod = _parts(self.output[-1])[1] if last else ""
        if lower in "aeo" and last == lower and not last_mod and self.apply_modifier(CIRCUMFLEX, lower):
            return
        if lower == "d" and last == "d" and self.output[-1] in "dD" and self.stroke_d():
            return
        if lower == "w":
            if self.apply_modifier(BREVE if last == "a" else HORN, "a" if last == "a" else "ou"):
                return
            self.output.append("Ư" if key == "W" else "ư")
            return
        if lower in TELEX_TONES and self.apply_tone(key, TELEX_TONES[lower]):
            return
        self.output.append(key)


class Vni(InputMethod):
    def press(self, key: str) -> None:
        if key in VNI_TONES and self.apply_tone(key, VNI_TONES[key]):
            return
        if key in VNI_MODIFIERS and self.apply_modifier(*VNI_MODIFIERS[key]):
            return
        if key == "9" and self.stroke_d():
            return
        self.output.append(key)


# Key codes a wedge scanner configured for the US layout sends, as (key, shift); the host turns them into text with
# its own layout. Both tables here are US, which is the only combination this test asserts. On a French AZERTY host
# the same unshifted digit-row key codes produce "&é\"'(-è_çà" instead of "1234567890" (digits need Shift there), so
# a US-configured scanner types garbage: scanners must be set to the host layout, or the station must read them
# through evdev with an exclusive grab and its own US key table (DOMAIN.md §6), where focus and layouts do not matter.
US_ROW = "1234567890"
US_KEYCODES = {char: (f"KEY_{char}", False) for char in US_ROW}
US_HOST = {(f"KEY_{char}", False): char for char in US_ROW}


def type_with_layouts(text: str, scanner: dict[str, tuple[str, bool]], host: dict[tuple[str, bool], str]) -> str:
    return "".join(host[scanner[char]] for char in text)


def base45(data: bytes) -> str:
    """RFC 9285 base45, as used by the EU Digital COVID Certificate QR codes."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
    out = []
    for start in range(0, len(data), 2):
        chunk = data[start:start + 2]
        value = int.from_bytes(chunk, "big")
        for _ in range(3 if len(chunk) == 2 else 2):
            value, digit = divmod(value, 45)
            out.append(alphabet[digit])
    return "".join(out)


def _issued_card_text() -> tuple[bytes, str]:
    signer = make_vectors.fixed_signers()[ALG_EDDSA]
    credential = sign_credential(make_vectors.SIZE_BUDGET_CLAIMS, signer)
    return credential, credential_qr_text(credential)


@pytest.mark.parametrize(("method", "keys", "expected"), [
    (Telex, "Nguyeenx Thij Phuwowng Thaor Vy", "Nguyễn Thị Phương Thảo Vy"),
    (Telex, "Ddoox Thij Hoaf", "Đỗ Thị Hòa"),
    (Telex, "Tuyeets Quynhf", "Tuyết Quỳnh"),
    (Telex, "aw ow uw w", "ă ơ ư ư"),
    (Vni, "Nguye64n Thi5 Phu7o7ng Tha3o Vy", "Nguyễn Thị Phương Thảo Vy"),
    (Vni, "D9o64 Thi5 Hoa2", "Đỗ Thị Hòa"),
    (Vni, "a1 d9 o6 a8 u7", "á đ ô ă ư"),
])
def test_the_models_type_vietnamese(method: type[InputMethod], keys: str, expected: str) -> None:
    """The models are credible: they turn real Telex / VNI keystrokes into the intended names."""
    assert method().type_text(keys) == expected


@pytest.mark.parametrize("method", [Telex, Vni])
def test_issued_card_text_passes_unchanged(method: type[InputMethod]) -> None:
    credential, text = _issued_card_text()
    typed = method().type_text(text)
    assert typed == text
    assert credential_from_text(typed + "\r\n") == credential


def test_us_scanner_on_us_host_types_the_digits() -> None:
    credential, text = _issued_card_text()
    typed = type_with_layouts(text, US_KEYCODES, US_HOST)
    assert typed == text
    assert credential_from_text(typed) == credential


@settings(max_examples=200, deadline=None)
@given(text=st.text("0123456789", max_size=400))
def test_any_digit_string_passes_both_input_methods(text: str) -> None:
    assert Telex().type_text(text) == text
    assert Vni().type_text(text) == text


def test_base64_and_base45_renderings_are_corrupted() -> None:
    credential, _ = _issued_card_text()
    renderings = {"base64": base64.b64encode(credential).decode(), "base45": base45(credential)}
    typed = {(name, method.__name__): method().type_text(text)
             for name, text in renderings.items() for method in (Telex, Vni)}
    changed = {key for key, result in typed.items() if result != renderings[key[0]]}
    assert changed, "a base64 or base45 rendering survived both input methods"
    # For this card every rendering is rewritten by both input methods.
    assert changed == set(typed)
