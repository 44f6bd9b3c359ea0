"""Bench: the check-in page's verdict latency, from the moment a card's QR is in view to the verdict on screen.

A live server (uvicorn, SQLite) with 90 members; for each condition a phone (headless Chromium) is set up with its
own station, then opened again with a fake camera that shows 30 different real cards one after the other (each
1.2 s in view, 0.6 s of white between them, 5 frames a second), under

(a) reference: no throttling;
(b) throttled: CDP ``Network.emulateNetworkConditions`` 400 kb/s both ways, 300 ms round trip;
(c) offline: CDP offline.

"In view" is the presentation time of the first video frame that holds the card (each card frame carries a black
mark in its corner that the bench's probe, injected into the page, looks for with ``requestVideoFrameCallback``);
"verdict" is the first animation frame after the result panel names a new scan. The bench prints p50/p95/max of the
30 scans of each condition, p95 against the reference, and PASS/MISS against the target (p95 ≤ 500 ms); it also
checks that the conditions were real (the offline scans are all queued, the throttled ones confirmed by the server).
It never fails on timings.

    .venv/bin/python bench/checkin_page.py [--scans 30]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, where bench/issuance.py would hide the `issuance`
# package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from PIL import Image, ImageDraw
from selenium import webdriver

from tests.web.checkin_helpers import (
    Seeded,
    checkin_rows,
    qr_image,
    result_state,
    seed,
    set_up_phone,
    wait_for,
    y4m,
)
from tests.web.harness import LiveServer, chromium, live_server

TARGET_MS = 500.0
FRAME_SIZE = (480, 360)
FPS = 5
LEAD_FRAMES = 20  # white before the first card: the probe is installed while the camera shows nothing
CARD_FRAMES = 6
GAP_FRAMES = 3
MARK = (8, 8, 32, 32)  # the black corner mark of a card frame, in frame pixels
CONDITIONS: dict[str, dict[str, Any] | None] = {
    "reference (no throttling)": None,
    "throttled 400 kb/s, 300 ms RTT": {"offline": False, "latency": 300, "downloadThroughput": 400_000 / 8,
                                       "uploadThroughput": 400_000 / 8},
    "offline": {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
}
FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ")
GIVEN = ("Lan", "Hoa", "Mai", "Thu", "Hạnh", "Ngọc", "Yến", "Đào", "Cúc", "Hương", "Linh", "Nga", "Oanh", "Phương",
         "Quyên")
# Installed once the camera runs: the presentation time of each first frame with the mark, and the animation frame
# after each new scan on the result panel.
PROBE = """
const [mark, size] = arguments;
const video = document.getElementById('video');
const box = document.getElementById('result');
const probe = document.createElement('canvas');
probe.width = probe.height = 1;
const context = probe.getContext('2d', {willReadFrequently: true});
window.bench = {inView: [], verdicts: []};
let marked = null; // a card already in view when the probe starts is not counted: its start is unknown
const onFrame = (now, meta) => {
  const sx = video.videoWidth / size[0];
  const sy = video.videoHeight / size[1];
  context.drawImage(video, mark[0] * sx, mark[1] * sy, (mark[2] - mark[0]) * sx, (mark[3] - mark[1]) * sy, 0, 0, 1, 1);
  const dark = context.getImageData(0, 0, 1, 1).data[0] < 96;
  if (dark && marked === false) window.bench.inView.push(meta.presentationTime || now);
  marked = dark;
  video.requestVideoFrameCallback(onFrame);
};
video.requestVideoFrameCallback(onFrame);
let last = box.dataset.nonce;
new MutationObserver(() => {
  if (!box.dataset.nonce || box.dataset.nonce === last) return;
  last = box.dataset.nonce;
  const name = document.getElementById('result-name').textContent;
  const state = box.dataset.state;
  requestAnimationFrame((painted) => window.bench.verdicts.push({at: painted, name, state}));
}).observe(box, {attributes: true, attributeFilter: ['data-nonce']});
"""


@dataclass
class Measured:
    latencies: list[float]
    missed: int
    states: dict[str, int]


def people(count: int) -> dict[str, str]:
    names = [f"{family} Thị {given}" for given in GIVEN for family in FAMILY]
    assert count <= len(names)
    return {f"m{index:03d}": names[index] for index in range(count)}


def card_frame(qr_text: str) -> Image.Image:
    frame = Image.new("RGB", FRAME_SIZE, "white")
    code = qr_image(qr_text, module_px=5)
    assert code.height <= FRAME_SIZE[1], "the QR must fit the frame"
    frame.paste(code.convert("RGB"), ((FRAME_SIZE[0] - code.width) // 2, (FRAME_SIZE[1] - code.height) // 2))
    ImageDraw.Draw(frame).rectangle(MARK, fill="black")
    return frame


def card_sequence(qr_texts: Sequence[str], path: Path) -> Path:
    frames: list[Image.Image | None] = [None] * LEAD_FRAMES
    for text in qr_texts:
        image = card_frame(text)
        frames += [image] * CARD_FRAMES + [None] * GAP_FRAMES
    return y4m(frames, path, size=FRAME_SIZE, fps=FPS)


def nearest_rank(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def measure(server: LiveServer, seeded: Seeded, role: str, keys: Sequence[str], network: dict[str, Any] | None,
            work: Path) -> Measured:
    profile = set_up_phone(server.url, seeded.codes[role], work / f"profile-{role}")
    camera = card_sequence([seeded.qr[key] for key in keys], work / f"cards-{role}.y4m")
    driver: webdriver.Chrome = chromium(fake_camera=camera, user_data_dir=profile)
    try:
        if network is not None:
            driver.execute_cdp_cmd("Network.enable", {})
            driver.execute_cdp_cmd("Network.emulateNetworkConditions", network)
        driver.get(f"{server.url}/checkin")
        wait_for(driver, lambda d: result_state(d)["camera"] == "on" and result_state(d)["bundle"] == "yes", 30)
        driver.execute_script(PROBE, MARK, FRAME_SIZE)
        deadline = time.monotonic() + (LEAD_FRAMES + len(keys) * (CARD_FRAMES + GAP_FRAMES)) / FPS + 20
        while time.monotonic() < deadline:
            seen = driver.execute_script("return window.bench")
            if len(seen["inView"]) >= len(keys) and len(seen["verdicts"]) >= len(keys):
                break
            time.sleep(0.5)
        seen = driver.execute_script("return window.bench")
        if not (network and network["offline"]):  # let the last scans reach the server before the phone closes
            wait_for(driver, lambda d: d.find_element("id", "queue").get_attribute("data-count") == "0", 30)
    finally:
        driver.quit()
        camera.unlink()
    in_view: list[float] = seen["inView"][: len(keys)]
    verdicts: list[dict[str, Any]] = seen["verdicts"]
    latencies: list[float] = []
    states: dict[str, int] = {}
    for index, start in enumerate(in_view):
        end = in_view[index + 1] if index + 1 < len(in_view) else math.inf
        shown = next((v for v in verdicts if start <= v["at"] < end), None)
        if shown is not None:
            latencies.append(shown["at"] - start)
            states[shown["state"]] = states.get(shown["state"], 0) + 1
    return Measured(latencies, len(keys) - len(latencies), states)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=30, help="cards scanned per condition (default 30)")
    args = parser.parse_args()
    roles = ("reference", "throttled", "offline")
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        with live_server(work) as server:
            seeded = seed(server, people(args.scans * len(roles)), roles)
            keys = sorted(seeded.qr)
            results: dict[str, Measured] = {}
            for number, (label, network) in enumerate(CONDITIONS.items()):
                role = roles[number]
                mine = keys[number * args.scans:(number + 1) * args.scans]
                results[label] = measure(server, seeded, role, mine, network, work)
            # The conditions were real: offline scans never reached the server; throttled ones all did.
            rows = checkin_rows(server, seeded.event_id)
            by_station = {role: sum(1 for r in rows if r.station_id == seeded.station_ids[role]) for role in roles}
    reference = results["reference (no throttling)"]
    reference_p95 = nearest_rank(reference.latencies, 0.95) if reference.latencies else math.nan
    print(f"check-in page: QR in view → verdict on screen, {args.scans} different cards per condition "
          f"(target p95 ≤ {TARGET_MS:.0f} ms)")
    print(f"{'condition':32} {'n':>3} {'missed':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'p95/ref':>7}  verdict")
    for label, measured in results.items():
        if not measured.latencies:
            print(f"{label:32} {0:>3} {measured.missed:>6}  no verdict measured  MISS")
            continue
        p50 = nearest_rank(measured.latencies, 0.5)
        p95 = nearest_rank(measured.latencies, 0.95)
        verdict = "PASS" if p95 <= TARGET_MS and measured.missed == 0 else "MISS"
        print(f"{label:32} {len(measured.latencies):>3} {measured.missed:>6} {p50:>7.0f} {p95:>7.0f} "
              f"{max(measured.latencies):>7.0f} {p95 / reference_p95:>6.2f}x  {verdict}  {measured.states}")
    print(f"scans recorded by the server per station: {by_station} (offline must be 0: those wait in the phone's "
          "queue)")


if __name__ == "__main__":
    main()
