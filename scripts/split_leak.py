"""How much a split leaks: the same simple classifiers scored on a random, a file-number-block and a grouped split.

A classifier that only remembers pictures scores high on a test split whose subjects were seen in training and low
on new subjects. This script makes three splits of one class-folder data set (70 / 15 / 15 %, seed 0) and scores a
1-nearest-neighbour classifier and a logistic regression on 32 x 32 thumbnails on each test split:

- ``random``: stratified by class, as a split without subject keys is made (``near_duplicates false``);
- ``blocks``: contiguous runs of file numbers within each class kept together (the block split the issue names:
  right when files are numbered in scan order, one subject after another);
- ``grouped``: medbundle's default, near-duplicate clusters kept on one side
  (:func:`medbundle.data.near_duplicates.group_near_duplicates`; on the Kaggle MRI release the clusters are the
  subjects).

Also printed: each split's share of test images whose nearest training image is a near duplicate (correlation of
the thumbnails >= 0.98), the direct measure of the leak. On the Kaggle MRI release file ``k`` of a class is slice
``k // S`` of subject ``k % S`` (``S`` = subjects in the class): the numbering interleaves the subjects, so blocks of
consecutive numbers hold one slice level of many subjects and leak as much as a random split.

Usage::

    python scripts/split_leak.py ../shared/data/alzheimer_mri/train [--block 26] [--output_dir runs/split_leak]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medbundle.metrics.intervals import wilson_interval  # noqa: E402

SPLIT_FRACTIONS = {"val": 0.15, "test": 0.15}


def _number(path: Path) -> int:
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else 0


def _thumbnails(files: list[Path], size: int = 32) -> np.ndarray:
    from PIL import Image

    rows = []
    for f in files:
        with Image.open(f) as im:
            rows.append(np.asarray(im.convert("L").resize((size, size), Image.BILINEAR), np.float32).ravel())
    x = np.stack(rows)
    x -= x.mean(1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-6
    return x


def _splits(items: list[dict], groups: dict[str, list], seed: int) -> dict[str, dict[str, list[dict]]]:
    from medbundle.data.splits import grouped_split, stratified_split

    out = {"random": stratified_split(items, SPLIT_FRACTIONS, seed)}
    for name, keys in groups.items():
        grouped = [{**item, "group": key} for item, key in zip(items, keys)]
        out[name] = grouped_split(grouped, SPLIT_FRACTIONS, seed)
    return out


def _score(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    sim = x[test] @ x[train].T
    nearest = sim.argmax(1)
    knn = y[train][nearest]
    logreg = LogisticRegression(max_iter=2000, C=1.0).fit(x[train], y[train]).predict(x[test])
    out = {"n_test": int(len(test)), "near_duplicate_in_train": float((sim.max(1) >= 0.98).mean())}
    for name, pred in (("1nn", knn), ("logreg", logreg)):
        k = int((pred == y[test]).sum())
        lo, hi = wilson_interval(k, len(test))
        out[name] = {"accuracy": k / len(test), "ci95": [lo, hi],
                     "balanced_accuracy": float(balanced_accuracy_score(y[test], pred))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset_dir")
    parser.add_argument("--block", type=int, default=26, help="files per block of the file-number split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", default=None, help="where split_leak.json is written")
    args = parser.parse_args()

    from medbundle.data.near_duplicates import group_near_duplicates

    root = Path(args.dataset_dir)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files, labels = [], []
    for c, name in enumerate(classes):
        found = sorted((p for p in (root / name).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")),
                       key=_number)
        files += found
        labels += [c] * len(found)
    items = [{"image": str(f), "id": f"{f.parent.name}/{f.name}", "label": lab} for f, lab in zip(files, labels)]
    print(f"{root}: {len(items)} images in {len(classes)} classes", flush=True)

    t = time.perf_counter()
    parts = {"train": [dict(item) for item in items]}
    group_near_duplicates(parts, root)
    clusters = [item["group"] for item in parts["train"]]
    print(f"near-duplicate clusters: {len(set(clusters))} groups in {time.perf_counter() - t:.0f} s", flush=True)
    rank = {}
    for item, f in zip(items, files):
        rank.setdefault(f.parent.name, []).append(item["id"])
    blocks = [f"{f.parent.name}#{rank[f.parent.name].index(item['id']) // args.block}" for item, f in zip(items, files)]

    x, y = _thumbnails(files), np.asarray(labels)
    index = {item["id"]: i for i, item in enumerate(items)}
    results = {}
    for name, split in _splits(items, {"blocks": blocks, "grouped": clusters}, args.seed).items():
        train = np.array([index[item["id"]] for item in split["train"]])
        test = np.array([index[item["id"]] for item in split["test"]])
        results[name] = _score(x, y, train, test)
        r = results[name]
        print(f"{name:8s} test n={r['n_test']:4d}  near duplicate of a training image: {r['near_duplicate_in_train']:.3f}  "
              f"1-NN accuracy {r['1nn']['accuracy']:.3f} [{r['1nn']['ci95'][0]:.3f}, {r['1nn']['ci95'][1]:.3f}] "
              f"(balanced {r['1nn']['balanced_accuracy']:.3f})  logistic regression {r['logreg']['accuracy']:.3f} "
              f"[{r['logreg']['ci95'][0]:.3f}, {r['logreg']['ci95'][1]:.3f}] (balanced {r['logreg']['balanced_accuracy']:.3f})",
              flush=True)
    if args.output_dir:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "split_leak.json").write_text(json.dumps({"dataset": str(root), "block": args.block, **results}, indent=1))


if __name__ == "__main__":
    main()
