#!/usr/bin/env python
"""Latency of a bundle's trained model on single images and batches, through the bundle's own inference config.

What is measured
----------------
The bundle's ``inference.json`` is parsed as ``python -m monai.bundle run`` would (its preprocessing, network,
inferer and model file: by default the model shipped with the bundle). For ``--images`` files:

* ``end_to_end``: one image, from the file on disk to class probabilities: read, preprocess (for
  pneumonia_xray: percentile scaling, resize, CLAHE), forward pass, softmax;
* ``forward``: the forward pass and softmax of one preprocessed image;
* ``batch``: the forward pass of a batch of ``--batch-size`` preprocessed images, reported per image.

Each is timed ``--repeats`` times after ``--warmup`` untimed calls; the table gives p50 and p95 in milliseconds.

Examples::

    python scripts/benchmark_inference.py --bundle pneumonia_xray --input ../shared/data/pneumonia_xray/train/NORMAL
    python scripts/benchmark_inference.py --bundle pneumonia_xray --threads 2 --repeats 200
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "n": len(ms)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default="pneumonia_xray")
    ap.add_argument("--input", default=None, help="a folder of images (default: the bundle's demo data, generated)")
    ap.add_argument("--ckpt-path", default=None, help="model file (default: the bundle's inference.json choice)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "medbundle_benchmark_inference.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from monai.bundle import ConfigParser

    import medbundle
    from medbundle.data import list_inputs

    configs = REPO / "bundles" / args.bundle / "configs"
    sys.argv = [sys.argv[0]]  # the bundle reads its command line; give it none
    parser = ConfigParser()
    parser.read_config(str(configs / "inference.json"))
    parser.read_meta(str(configs / "metadata.json"))
    if args.ckpt_path:
        parser["ckpt_path"] = args.ckpt_path
    folder = args.input
    if folder is None:
        folder = medbundle.data.ensure_demo_data(parser.get_parsed_content("dataset_dir"), args.bundle)
    files = [item["image"] for item in list_inputs(folder, class_names=parser.get_parsed_content("class_names"))]
    if not files:
        raise SystemExit(f"no images in {folder}")
    ckpt = parser.get_parsed_content("ckpt_path")
    network = parser.get_parsed_content("network")
    network.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
    network.eval()
    preprocess = parser.get_parsed_content("preprocessing")
    inferer = parser.get_parsed_content("inferer")
    device = parser.get_parsed_content("device")

    def probs(batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(inferer(batch.to(device), network).float(), 1)

    def end_to_end(path: str) -> torch.Tensor:
        return probs(preprocess({"image": path})["image"][None])

    images = [preprocess({"image": f})["image"] for f in files[: max(args.batch_size, 8)]]
    results = {}
    for name, call in (
        ("end_to_end", lambda i: end_to_end(files[i % len(files)])),
        ("forward", lambda i: probs(images[i % len(images)][None])),
        ("batch", lambda i: probs(torch.stack([images[(i + k) % len(images)] for k in range(args.batch_size)]))),
    ):
        for i in range(args.warmup):
            call(i)
        seconds = []
        for i in range(args.repeats):
            start = time.perf_counter()
            call(i)
            seconds.append(time.perf_counter() - start)
        if name == "batch":
            seconds = [s / args.batch_size for s in seconds]
        results[name] = _percentiles(seconds)
    results["setup"] = {"bundle": args.bundle, "model": str(ckpt), "threads": args.threads, "images": len(files),
                        "batch_size": args.batch_size, "spatial_size": list(parser.get_parsed_content("spatial_size")),
                        "torch": torch.__version__}
    print(f"| {args.bundle} ({args.threads} threads) | p50 ms | p95 ms |\n|---|---|---|")
    for name in ("end_to_end", "forward", "batch"):
        label = f"{name} (per image, batch {args.batch_size})" if name == "batch" else name
        print(f"| {label} | {results[name]['p50_ms']:.1f} | {results[name]['p95_ms']:.1f} |")
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"figures in {args.out}")
    return results


if __name__ == "__main__":
    main()
