"""Benchmark the web demo as a user meets it: upload to shown result in headless Chromium.

Starts ``python -m medbundle.demo`` on a free loopback port (the shipped pneumonia model by default), opens the page
in headless Chromium (Selenium, the system ``chromium`` and ``chromedriver``), uploads ``--uploads`` copies of a film
(a new file name each time, so that every upload is predicted afresh) and measures, per upload, the time from the file
being chosen until the prediction and all three heat-map images are shown, timed inside the page (``performance.now()``
at the upload control's change event and at the first DOM state that shows the answer with every image loaded:
``DemoPage.upload_timed``), so the driver's polling does not add to it. Also reports the server start-up,
the first page load, the server's page-script time per upload (read, predict, draw: from the server log) and the
predictor's own time (read from the page's "answered in" caption).

Example::

    nice -n 10 python scripts/benchmark_demo.py --uploads 10 --explain gradcam \\
        --screenshot bundles/pneumonia_xray/docs/demo_screenshot.png
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from medbundle.demo.browser import DemoPage, DemoServer, missing_requirements  # noqa: E402

CAPTIONS = ("image (as the model saw it)", "heat map", "overlay")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _stats(values: list[float]) -> dict:
    return {"n": len(values), "p50": round(statistics.median(values), 1), "p95": round(_percentile(values, 0.95), 1),
            "min": round(min(values), 1), "max": round(max(values), 1)}


def _save_screenshot(page: DemoPage, target: Path) -> None:
    """The page as an optimised PNG at ``target``, written atomically."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        raw = page.screenshot(Path(tmp) / "raw.png")
        image = Image.open(raw).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        partial = target.with_name(f".{target.name}.partial")
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(partial, format="PNG", optimize=True)
        os.replace(partial, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default="pneumonia_xray")
    parser.add_argument("--run_dir", default=None)
    parser.add_argument("--file", default=None, help="the film to upload (default: RG1_UNCR.dcm of pydicom-data)")
    parser.add_argument("--explain", default="gradcam", choices=("gradcam",),
                        help="the page's default method (the page starts on Grad-CAM)")
    parser.add_argument("--uploads", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="the demo's --threads (torch threads)")
    parser.add_argument("--log", default=None, help="keep the demo server's log here")
    parser.add_argument("--screenshot", default=None, help="save the page after the first result here (PNG)")
    args = parser.parse_args(argv)
    missing = missing_requirements()
    if missing:
        print(f"benchmark_demo: cannot drive the demo: {missing}", file=sys.stderr)
        return 2
    if args.file is None:
        from pydicom.data import get_testdata_file

        args.file = get_testdata_file("RG1_UNCR.dcm")
    film = Path(args.file)
    work = Path(tempfile.mkdtemp(prefix="benchmark_demo_"))
    demo_args = ["--bundle", args.bundle, "--threads", str(args.threads)] + (["--run_dir", args.run_dir] if args.run_dir else [])
    start = time.monotonic()
    server = DemoServer(*demo_args, log=work / "demo.log")
    started = time.monotonic() - start
    try:
        start = time.monotonic()
        page = DemoPage(server.url, height=1900)
        first_page = time.monotonic() - start
        shown, answered, labels = [], [], set()
        for i in range(args.uploads + 1):  # upload 0: warm-up (first explanation builds its hooks), not counted
            copy = work / (film.name if i == 0 else f"upload_{i:02d}{film.suffix}")
            shutil.copy(film, copy)
            elapsed = page.upload_timed(copy, CAPTIONS)  # timed by the page itself
            labels.add(page.result(copy.name))
            images = page.images(CAPTIONS)
            if not all(images.get(c, 0) > 0 for c in CAPTIONS):
                raise RuntimeError(f"upload {i}: heat-map images not shown: {images}")
            ms = re.search(r"answered in (\d+) ms", page.text())
            if i == 0 and args.screenshot:
                _save_screenshot(page, Path(args.screenshot))
            if i > 0:
                shown.append(elapsed)
                answered.append(float(ms.group(1)) if ms else float("nan"))
        page.close()
    finally:
        server.stop()
    drawn = [float(m) for m in re.findall(r"answered and drawn in (\d+) ms", (work / "demo.log").read_text())][1:]
    report = {"bundle": args.bundle, "file": film.name, "explain": args.explain, "cpus": os.cpu_count(),
              "load_average_1min": round(os.getloadavg()[0], 2), "server_start_s": round(started, 2),
              "first_page_s": round(first_page, 2), "labels": sorted(labels),
              "threads": args.threads,
              "upload_to_shown_ms": _stats(shown), "page_script_ms": _stats(drawn) if drawn else None,
              "predictor_ms": _stats(answered)}
    print(json.dumps(report, indent=2))
    if args.log:
        shutil.copy(work / "demo.log", args.log)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
