"""Compare trained models on one test set: a ranked table (CSV and Markdown) and a bar chart.

Each model is a training run folder (the ``--output_dir`` of ``train.json``; its ``run.json`` records the plain
settings it was trained with, so the same network and preprocessing are rebuilt, and is read as data: nothing in a
run folder is evaluated; see :mod:`medbundle.runs.rebuild`) or a
checkpoint file inside one (``<run>/models/checkpoint_epoch=12.pt``; default: the run's best ``model.pt``).
Runs of any bundle can be compared as long as they predict the same classes.

Every model sees the same images: by default the test split of the first run (its ``split.json``), or the
labelled images of ``--input_path`` (a data folder in any layout training accepts, read the same way but with
nothing split off: class folders, split folders, ``Train.mat``..., parquet; or a ``datalist.csv``, a ``.mat`` file
...). A run
whose own training or validation split contains test images is flagged (``test_seen_in_training``), since its
figures would be optimistic.

Usage::

    python -m medbundle.compare ~/medbundle/runs/baseline ~/medbundle/runs/resnet50 --output_dir comparison

Writes ``comparison.csv``, ``comparison.md`` and ``comparison.png`` (atomically) to ``--output_dir``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medbundle.metrics import classification_metrics
from medbundle.plots.figure import agg_figure, save_png
from medbundle.runs import RunRecordError, medbundle_home, read_record, recorded_network
from medbundle.runs.rebuild import run_parser
from medbundle.utils import atomic_write, atomic_write_csv

__all__ = ["RunModel", "load_run", "compare", "main"]

# the run's data options that read a labelled test folder as its training data was read (class aliases, metadata
# table columns); a run recorded before an option existed gets its default
_LOAD_OPTIONS = {"data_key": "data", "label_key": "label", "image_column": "image", "class_aliases": None,
                 "table_file": None, "label_column": None, "finding_map": None, "row_filter": None,
                 "group_column": None, "source_column": None}

logger = logging.getLogger("medbundle.compare")

METRICS = ("accuracy", "macro_f1", "balanced_accuracy", "auc_macro_ovr")


class RunModel:
    """A trained model rebuilt from its run folder: network with weights, preprocessing, classes, inferer.

    Args:
        run: the run folder or a checkpoint file inside it.
        name: label in the table (default: the run folder's name, plus the checkpoint when not ``model.pt``).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
    """

    def __init__(self, run: str | os.PathLike, name: str | None = None, device: str = "auto") -> None:
        path = Path(run).expanduser().resolve()
        if path.is_file():
            ckpt, folder = path, path.parent.parent if path.parent.name == "models" else path.parent
        else:
            ckpt, folder = path / "models" / "model.pt", path
        record = read_record(folder)  # plain JSON: nothing in a run folder is ever evaluated
        if not ckpt.is_file():
            raise FileNotFoundError(f"{ckpt}: no trained model there. Train first, or name a checkpoint file.")
        self.parser = run_parser(record, folder, device)
        self.folder, self.ckpt, self.record = folder, ckpt, record
        self.name = name or (folder.name if ckpt.name == "model.pt" else f"{folder.name}/{ckpt.stem}")
        self.class_names = list(self.parser.get_parsed_content("class_names"))
        recorded_names = record["settings"].get("class_names")
        if recorded_names is not None and recorded_names != self.class_names:
            raise RunRecordError(f"{folder / 'run.json'}: the run predicts {recorded_names}, but its bundle "
                                 f"{record['settings'].get('bundle_name')!r} now names {self.class_names}")
        self.device = self.parser.get_parsed_content("device")
        self.network = recorded_network(folder).to(self.device)
        state = torch.load(ckpt, map_location=self.device, weights_only=True)
        self.network.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
        self.network.eval()
        self.preprocessing = self.parser.get_parsed_content("validate#preprocessing")
        self.inferer = self.parser.get_parsed_content("validate#inferer")
        self.n_parameters = sum(p.numel() for p in self.network.parameters())

    def test_items(self) -> list[dict]:
        """The run's own test split (from its ``split.json`` or the data's test split)."""
        return list(self.parser.get_parsed_content("datalists")["test"])

    def seen_ids(self) -> set[str]:
        """Image paths of the run's training and validation splits (to detect test images it has seen)."""
        lists = self.parser.get_parsed_content("datalists")
        return {item["image"] for s in ("train", "val") for item in lists[s]}

    @torch.no_grad()
    def predict(self, items: Sequence[dict], batch_size: int = 32) -> tuple[np.ndarray, float]:
        """Class probabilities ``(N, C)`` for ``items`` and the network time per image in milliseconds."""
        from monai.data import DataLoader, Dataset

        loader = DataLoader(Dataset(list(items), transform=self.preprocessing), batch_size=batch_size, shuffle=False)
        probs, seconds = [], 0.0
        for i, batch in enumerate(loader):
            x = batch["image"].to(self.device)
            if i == 0:
                self.inferer(x[:1], self.network)  # warm-up, not timed
            t0 = time.perf_counter()
            logits = self.inferer(x, self.network)
            seconds += time.perf_counter() - t0
            probs.append(logits.float().softmax(1).cpu().numpy())
        return np.concatenate(probs), 1e3 * seconds / max(1, len(items))


def load_run(run: str | os.PathLike, device: str = "auto") -> RunModel:
    """Rebuild a trained model from its run folder (see :class:`RunModel`)."""
    return RunModel(run, device=device)


def compare(
    runs: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    input_path: str | os.PathLike | None = None,
    rank_by: str = "macro_f1",
    device: str = "auto",
    batch_size: int = 32,
) -> list[dict]:
    """Evaluate ``runs`` on one test set and write the ranked table and chart.

    Args:
        runs: run folders or checkpoint files (see :class:`RunModel`).
        output_dir: where ``comparison.csv``, ``comparison.md`` and ``comparison.png`` go.
        input_path: labelled images to test on; None: the test split of the first run.
        rank_by: the column the table is sorted by (descending): one of ``accuracy``, ``macro_f1``,
            ``balanced_accuracy``, ``auc_macro_ovr``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        batch_size: images per forward pass.

    Returns:
        the table rows, best first.

    Raises:
        ValueError: when the runs predict different classes, or the test images have no labels.
    """
    from medbundle.data.datalists import load_labelled
    from medbundle.data.limits import MAX_PIXELS

    if rank_by not in METRICS:
        raise ValueError(f"rank_by must be one of {METRICS}, got {rank_by!r}")
    if not runs:
        raise ValueError("no runs to compare: give at least one run folder or checkpoint")
    models = [RunModel(r, device=device) for r in runs]
    names = [m.name for m in models]
    for m in models:
        if m.class_names != models[0].class_names:
            raise ValueError(
                f"{m.folder}: predicts {m.class_names}, but {models[0].folder} predicts {models[0].class_names}; "
                "only models of the same classes can be compared"
            )
        if names.count(m.name) > 1:
            m.name = f"{m.name} ({m.folder.parent.name})"
    class_names = models[0].class_names
    if input_path is None:
        items, source = models[0].test_items(), f"test split of {models[0].folder}"
    else:
        parser = models[0].parser
        options = {key: parser.get_parsed_content(key, default=default) for key, default in _LOAD_OPTIONS.items()}
        items = load_labelled(input_path, class_names, **{k: v for k, v in options.items() if v is not None},
                              max_pixels=parser.get_parsed_content("max_pixels", default=MAX_PIXELS))
        source = str(input_path)
    unlabelled = [it["id"] for it in items if not isinstance(it.get("label"), int)]
    if unlabelled or not items:
        raise ValueError(
            f"{source}: {len(unlabelled)} of {len(items)} test images have no class label (e.g. {unlabelled[:3]}). "
            "Give labelled images: class folders, a datalist with labels, or a run's test split."
        )
    y = np.array([it["label"] for it in items])
    test_images = {it["image"] for it in items}
    logger.info("comparing %d model(s) on %d images (%s)", len(models), len(items), source)
    rows = []
    for m in models:
        probs, ms = m.predict(items, batch_size)
        met = classification_metrics(y, probs, class_names)
        seen = len(test_images & m.seen_ids())
        if seen:
            logger.warning("%s: %d of the %d test images are in its training/validation split: its figures are "
                           "optimistic", m.name, seen, len(items))
        row: dict[str, Any] = {"model": m.name}
        row.update({k: met[k] for k in METRICS})
        row.update({f"recall_{c}": met["per_class"][c]["recall"] for c in class_names})
        row.update({"parameters": m.n_parameters, "ms_per_image": ms, "test_images": len(items),
                    "test_seen_in_training": seen, "checkpoint": str(m.ckpt)})
        rows.append(row)
        logger.info("%s: accuracy %.4f, macro F1 %.4f, %.2f ms/image", m.name, row["accuracy"], row["macro_f1"], ms)
    rows.sort(key=lambda r: -(r[rank_by] if r[rank_by] is not None else -np.inf))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    rows = [{"rank": r.pop("rank"), **r} for r in rows]
    out = Path(output_dir).expanduser()
    atomic_write_csv(out / "comparison.csv", rows)
    with atomic_write(out / "comparison.md") as f:
        f.write(markdown_table(rows, class_names, source, rank_by))
    plot_comparison(rows, out / "comparison.png", rank_by)
    logger.info("comparison written to %s", out)
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(rows: list[dict], class_names: Sequence[str], source: str, rank_by: str) -> str:
    """The comparison as a Markdown table (best first), with what it was measured on."""
    cols = ["rank", "model", *METRICS, *[f"recall_{c}" for c in class_names], "parameters", "ms_per_image",
            "test_seen_in_training"]
    lines = [f"Models ranked by {rank_by} on {rows[0]['test_images']} images ({source}).", "",
             "| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_comparison(rows: list[dict], path: str | os.PathLike, rank_by: str) -> None:
    """Grouped bars of the headline metrics per model (best first), written as PNG."""
    labels = {"accuracy": "accuracy", "macro_f1": "macro F1", "balanced_accuracy": "balanced accuracy",
              "auc_macro_ovr": "AUC (macro OvR)"}
    with agg_figure(figsize=(max(6.0, 1.6 * len(rows) + 3), 4.2), layout="constrained") as fig:
        ax = fig.add_subplot()
        width = 0.8 / len(METRICS)
        x = np.arange(len(rows))
        for j, key in enumerate(METRICS):
            values = [r[key] if r[key] is not None else 0.0 for r in rows]
            bars = ax.bar(x + (j - (len(METRICS) - 1) / 2) * width, values, width, label=labels[key])
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        ax.set_xticks(x, [r["model"] for r in rows])
        ax.set_ylim(0, 1.08)
        ax.set_ylabel("score")
        ax.set_title(f"{rows[0]['test_images']} test images, ranked by {labels[rank_by]}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        save_png(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m medbundle.compare", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="training run folders (--output_dir of train.json) or checkpoint files")
    p.add_argument("--output_dir", default=str(medbundle_home() / "runs" / "comparison"), help="where to write")
    p.add_argument("--input_path", default=None,
                   help="labelled test images (class folders, datalist.csv, .mat); default: the first run's test split")
    p.add_argument("--rank_by", default="macro_f1", choices=METRICS)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch_size", type=int, default=32)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    try:
        rows = compare(args.runs, args.output_dir, args.input_path, args.rank_by, args.device, args.batch_size)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(Path(args.output_dir, "comparison.md").read_text())
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
