"""Bench: our QR PNG/SVG rendering against ``qrcode.make(text)`` with default settings, same payloads, same run.

Payloads are realistic credential texts: "8401" followed by random digits, 428 digits in all (version 9 at ECC M).

Measured, each renderer on its own fresh list of distinct payloads so that no render is served from our per-text
matrix cache (that would flatter us: the cache only pays when the same card is rendered more than once), taking
turns within each round:

(a) reference: ``qrcode.make(text)`` — auto mode (which picks numeric for an all-digit text), ECC M, box 10,
    border 4, PIL image; reported both as the bare call and followed by ``save(PNG)`` so both sides end in bytes;
(b) ``issuance.render.qr_png(text)`` — numeric mode, ECC M, 8 px modules, border 4, 1-bit PNG bytes;
(c) ``issuance.render.qr_svg(text)``;
(d) for information, ``qr_png`` of a text already in the matrix cache (the PDF/PNG/SVG-of-one-card case);
(e) ``issuance.printing.sheets_pdf`` of 500 cards (50 A4 pages) with distinct 412-digit texts (version 9): cards per
    second and PDF bytes per card, and, on another set of distinct texts of that length, ``qr_matrix`` alone (the
    QR encoding each sheet card needs), to show how much of a card is encoding and how much is PDF drawing.

Each figure is the best of several rounds. Prints only.

    .venv/bin/python bench/qr_render.py [--renders N] [--rounds R] [--sheet-cards C]
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and bench/issuance.py would hide the `issuance` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import qrcode

from issuance.printing import CardFace, sheets_pdf
from issuance.render import qr_matrix, qr_png, qr_svg

TEXT_DIGITS = 428
SHEET_TEXT_DIGITS = 412
SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Võ", "Đặng")
GIVEN_NAMES = ("Thị Phương Thảo", "Thị Hồng Nhung", "Ngọc Ánh", "Thị Thu Hà", "Bảo Trâm", "Thị Mỹ Duyên")


def payloads(count: int, rng: random.Random, digits: int = TEXT_DIGITS) -> list[str]:
    """``count`` realistic credential texts: the "8401" prefix and random digits."""
    return ["8401" + "".join(rng.choices("0123456789", k=digits - 4)) for _ in range(count)]


def sheet_faces(count: int, rng: random.Random) -> list[CardFace]:
    """``count`` cards with distinct members and credential texts, as a chapter's batch would print them."""
    return [
        CardFace(
            union_name="Hội Liên hiệp Phụ nữ Việt Nam",
            full_name=f"{rng.choice(SURNAMES)} {rng.choice(GIVEN_NAMES)}",
            member_number=f"{1_000_000 + index:010d}",
            chapter_name="Chi hội Phụ nữ Tổ dân phố 5, Phường Thanh Xuân Trung",
            issued_on=date(2025, 7, 1),
            expires_on=date(2030, 6, 30),
            qr_text=text,
        )
        for index, text in enumerate(payloads(count, rng, SHEET_TEXT_DIGITS))
    ]


def sheet_rates(cards: int, rounds: int, rng: random.Random) -> tuple[float, float, float]:
    """Best-round cards/s of ``sheets_pdf`` and of ``qr_matrix`` alone, and PDF bytes per card.

    Every round uses fresh texts for both, so neither is served from the matrix cache.
    """
    sheets_pdf(sheet_faces(1, rng))  # font registration and parsing happen once per process
    sheet_best = encode_best = 0.0
    size = 0
    for _ in range(rounds):
        faces = sheet_faces(cards, rng)
        start = time.perf_counter()
        pdf = sheets_pdf(faces)
        sheet_best = max(sheet_best, cards / (time.perf_counter() - start))
        size = len(pdf)
        texts = payloads(cards, rng, SHEET_TEXT_DIGITS)
        start = time.perf_counter()
        for text in texts:
            qr_matrix(text)
        encode_best = max(encode_best, cards / (time.perf_counter() - start))
    return sheet_best, encode_best, size / cards


def best_rates(
    renders: dict[str, Callable[[str], object]], batches: Sequence[dict[str, list[str]]]
) -> dict[str, float]:
    """Renders per second of each renderer over its own payloads, best round.

    The renderers take turns within every round, so a slow spell of the machine hits them all alike.
    """
    rates: dict[str, list[float]] = {name: [] for name in renders}
    for batch in batches:
        for name, render in renders.items():
            start = time.perf_counter()
            for text in batch[name]:
                render(text)
            rates[name].append(len(batch[name]) / (time.perf_counter() - start))
    return {name: max(values) for name, values in rates.items()}


def reference_png(text: str) -> bytes:
    """The reference carried to PNG bytes, as our renderer delivers them."""
    out = io.BytesIO()
    qrcode.make(text).save(out, format="PNG")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=100, help="renders per round (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement, best kept (default 3)")
    parser.add_argument("--sheet-cards", type=int, default=500, help="cards per sheets_pdf run (default 500)")
    args = parser.parse_args()
    rng = random.Random(20250701)

    renders: dict[str, Callable[[str], object]] = {
        "make": qrcode.make,
        "make_png": reference_png,
        "png": qr_png,
        "svg": qr_svg,
    }
    batches = [{name: payloads(args.renders, rng) for name in renders} for _ in range(args.rounds)]
    rates = best_rates(renders, batches)
    make_rate, make_png_rate, png_rate, svg_rate = rates["make"], rates["make_png"], rates["png"], rates["svg"]
    warm_text = payloads(1, rng)
    qr_png(warm_text[0])
    warm_batches = [{"warm": warm_text * args.renders} for _ in range(args.rounds)]
    warm_rate = best_rates({"warm": qr_png}, warm_batches)["warm"]

    sample = payloads(1, rng)[0]
    print(f"payload: {TEXT_DIGITS} digits, {args.renders} distinct payloads x {args.rounds} rounds (best round)")
    print(f"qrcode.make(text)                  {make_rate:8.1f} renders/s  (PIL image, no PNG bytes)")
    print(f"qrcode.make(text).save(PNG)        {make_png_rate:8.1f} renders/s  {len(reference_png(sample)):6d} B")
    print(f"qr_png(text)                       {png_rate:8.1f} renders/s  {len(qr_png(sample)):6d} B")
    print(f"qr_svg(text)                       {svg_rate:8.1f} renders/s  {len(qr_svg(sample)):6d} B")
    print(f"qr_png(text), matrix cached        {warm_rate:8.1f} renders/s")
    print(f"ratio qr_png / qrcode.make         {png_rate / make_rate:8.2f}x")
    print(f"ratio qr_png / qrcode.make + PNG   {png_rate / make_png_rate:8.2f}x")
    print(f"ratio qr_svg / qrcode.make + PNG   {svg_rate / make_png_rate:8.2f}x")

    sheet_rate, encode_rate, bytes_per_card = sheet_rates(args.sheet_cards, args.rounds, rng)
    pages = -(-args.sheet_cards // 10)
    print(f"sheets_pdf: {args.sheet_cards} cards ({pages} A4 pages), {SHEET_TEXT_DIGITS}-digit distinct texts")
    print(f"sheets_pdf(faces)                  {sheet_rate:8.1f} cards/s  {1000 / sheet_rate:6.2f} ms/card")
    total_bytes = bytes_per_card * args.sheet_cards
    print(f"  PDF size                         {bytes_per_card:8.0f} B/card  {total_bytes:9.0f} B")
    print(f"  of which qr_matrix(text) alone   {encode_rate:8.1f} cards/s  {1000 / encode_rate:6.2f} ms/card")
    print(f"  the rest: PDF drawing and saving {1000 / sheet_rate - 1000 / encode_rate:15.2f} ms/card")


if __name__ == "__main__":
    main()
