#!/usr/bin/env python
"""Time CLAHE per image: ``medbundle.transforms.CLAHE`` (OpenCV, 8-bit) against scikit-image's
``equalize_adapthist``.

What is measured
----------------
``--images`` chest X-rays from ``--data`` (default: the shared Kermany training folder
``../shared/data/pneumonia_xray/train``, both classes alternately; synthetic low-contrast images where it is absent),
loaded by ``LoadImage2D`` and scaled to [0, 1] as a bundle does, then resized (bilinear) to each of ``--sizes``
(the Kermany files are 224 x 224, so 1024 x 1024 is an upsampling: the same pixel count as a full-size film, not
its detail). For each image and size, one call of each candidate per round, ``--repeats`` rounds after one untimed
warm-up, the order alternating:

* ``opencv``: ``CLAHE(clip_limit=2.0, tile_grid_size=(8, 8))`` on the ``(1, H, W)`` float32 array, conversion to and
  from 8 bits included (what a pipeline pays);
* ``skimage``: ``skimage.exposure.equalize_adapthist(image, kernel_size=(H // 8, W // 8), clip_limit=2.0 / 256,
  nbins=256)`` on the ``(H, W)`` float image: the same 8 x 8 tiles and the same clip level (OpenCV clips each bin at
  ``clipLimit`` times the mean bin count, ``clipLimit * tile_pixels / 256``; scikit-image at
  ``clip_limit * tile_pixels``).

Reported per size: the median seconds per image of each, their ratio (skimage / opencv), and the mean Pearson
correlation of the two outputs (they differ in interpolation and rounding, not in kind). ``--threads`` sets OpenCV's
and torch's thread counts (default 1: one worker's share).

Output
------
A Markdown table on stdout and the figures as JSON in ``--out`` (default
``<system temp dir>/medbundle_benchmark_clahe.json``, never inside the repository).

Example::

    python scripts/benchmark_clahe.py                      # ~30 s on one core
    python scripts/benchmark_clahe.py --sizes 224 --repeats 9
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "pneumonia_xray" / "train"
DEFAULT_OUT = Path(tempfile.gettempdir()) / "medbundle_benchmark_clahe.json"
if str(REPO) not in sys.path[:1]:
    sys.path.insert(0, str(REPO))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of class folders of X-ray images")
    p.add_argument("--images", type=int, default=10, help="images per size")
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 1024], help="square image sizes")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per image and candidate")
    p.add_argument("--threads", type=int, default=1, help="OpenCV and torch threads")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file of the figures")
    args = p.parse_args(argv)
    args.out = args.out.expanduser().resolve()
    if args.out == REPO or REPO in args.out.parents:
        p.error(f"--out must be outside the repository ({REPO})")
    return args


def load_images(folder: Path, n: int) -> tuple[list[np.ndarray], str]:
    """``n`` images as ``(H, W)`` float32 in [0, 1], the classes alternating, and where they came from."""
    from monai.transforms import ScaleIntensity

    from medbundle.transforms import LoadImage2D

    classes = sorted(d for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []
    files = [sorted(f for f in d.iterdir() if f.suffix.lower() in (".jpeg", ".jpg", ".png")) for d in classes]
    if files and all(files):
        picked = [files[i % len(files)][i // len(files)] for i in range(n)]
        load, scale = LoadImage2D(), ScaleIntensity()
        return [np.asarray(scale(load(str(f))))[0].astype(np.float32) for f in picked], f"{folder} ({n} files)"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:224, :224] / 224
    images = []
    for _ in range(n):
        img = 0.4 + 0.1 * xx + 0.1 * np.sin(6 * yy + rng.uniform(0, 6)) + rng.normal(0, 0.02, xx.shape)
        images.append(np.clip(img, 0, 1).astype(np.float32))
    return images, f"synthetic ({folder} absent)"


def run(args: argparse.Namespace) -> dict:
    import cv2
    import torch
    from skimage.exposure import equalize_adapthist

    from medbundle.transforms import CLAHE

    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)
    base, source = load_images(args.data, args.images)
    clahe = CLAHE(clip_limit=2.0, tile_grid_size=(8, 8))
    results = {}
    for size in args.sizes:
        images = [cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)[None] for img in base]
        candidates = {
            "opencv": lambda im: clahe(im),
            "skimage": lambda im: equalize_adapthist(im[0], kernel_size=(size // 8, size // 8), clip_limit=2.0 / 256,
                                                     nbins=256),
        }
        times: dict[str, list[float]] = {k: [] for k in candidates}
        correlations = []
        for i, im in enumerate(images):
            outputs = {k: fn(im) for k, fn in candidates.items()}  # warm-up, and the outputs to compare
            correlations.append(float(np.corrcoef(np.ravel(outputs["opencv"]), np.ravel(outputs["skimage"]))[0, 1]))
            for r in range(args.repeats):
                order = list(candidates) if (i + r) % 2 == 0 else list(candidates)[::-1]
                for name in order:
                    start = time.perf_counter()
                    candidates[name](im)
                    times[name].append(time.perf_counter() - start)
        medians = {k: statistics.median(v) for k, v in times.items()}
        results[str(size)] = {
            "opencv_s": medians["opencv"],
            "skimage_s": medians["skimage"],
            "ratio": medians["skimage"] / medians["opencv"],
            "correlation": statistics.fmean(correlations),
            "calls": len(times["opencv"]),
        }
    return {"source": source, "threads": args.threads, "machine": platform.processor() or platform.machine(),
            "versions": {"opencv": cv2.__version__, "skimage": __import__("skimage").__version__},
            "sizes": results}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    figures = run(args)
    print(f"CLAHE per image, {figures['source']}, {figures['threads']} thread(s)\n")
    print("| size | OpenCV CLAHE (ms) | skimage equalize_adapthist (ms) | skimage / OpenCV | output correlation |")
    print("|---|---|---|---|---|")
    for size, r in figures["sizes"].items():
        print(f"| {size} x {size} | {1000 * r['opencv_s']:.2f} | {1000 * r['skimage_s']:.1f} | {r['ratio']:.0f}x | "
              f"{r['correlation']:.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from medbundle.utils import atomic_write_json

    atomic_write_json(args.out, figures)
    print(f"\nfigures: {args.out}")


if __name__ == "__main__":
    main()
