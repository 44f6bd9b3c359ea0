"""Bench: our QR PNG/SVG rendering against ``qrcode.make(text)`` with default settings, same payloads, same run.

Payloads are realistic credential texts: "8401" followed by random digits, 428 digits in all (version 9 at ECC M).

Measured, each renderer on its own fresh list of distinct payloads so that no render is served from our per-text
matrix cache (that would flatter us: the cache only pays when the same card is rendered more than once), taking
turns within each round:

(a) reference: ``qrcode.make(text)`` — auto mode (which picks numeric for an all-digit text), ECC M, box 10,
    border 4, PIL image; reported both as the bare call and followed by ``save(PNG)`` so both sides end in bytes;
(b) ``issuance.render.qr_png(text)`` — numeric mode, ECC M, 8 px modules, border 4, 1-bit PNG bytes;
(c) ``issuance.render.qr_svg(text)``;
(d) for information, ``qr_png`` of a text already in the matrix cache (the PDF/PNG/SVG-of-one-card case).

Each figure is the best of several rounds. Prints only.

    .venv/bin/python bench/qr_render.py [--renders N] [--rounds R]
"""

from __future__ import annotations

import argparse
import io
import random
import time
from collections.abc import Callable, Sequence

import qrcode

from issuance.render import qr_png, qr_svg

TEXT_DIGITS = 428


def payloads(count: int, rng: random.Random) -> list[str]:
    """``count`` realistic credential texts: the "8401" prefix and random digits."""
    return ["8401" + "".join(rng.choices("0123456789", k=TEXT_DIGITS - 4)) for _ in range(count)]


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


if __name__ == "__main__":
    main()
