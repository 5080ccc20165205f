"""External evaluation: the trained model scored on data sets from other sources, side by side with the internal test.

A model that scores well on a test split carved from its own training data may have learnt the source (the hospital,
the scanner, the age of the patients) rather than the disease (DeGrave et al. 2021). ``evaluate.json`` therefore
scores any number of external sets (``--external_dir``: folders in any layout medbundle reads, or metadata tables)
after the internal test split, each with the full report of the internal one (``eval/external/<name>/``), and writes
the comparison: ``eval/external.json``, ``eval/external.md`` and ``eval/external.png`` (accuracy and each class's
sensitivity with their 95 % intervals, per set), with the drop from internal to external stated, and figures per
source where the items carry one (a ``source_column`` of a metadata table).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medbundle.errors import OptionError
from medbundle.metrics.intervals import proportion_with_ci
from medbundle.options import as_bool
from medbundle.plots.external import plot_external
from medbundle.utils import atomic_write

__all__ = ["ExternalEvaluation", "external_sets", "compare_sets"]

logger = logging.getLogger("medbundle.external")

_LOAD_OPTIONS = ("class_aliases", "image_column", "label_column", "finding_map", "row_filter", "group_column",
                 "source_column", "table_file", "data_key", "label_key", "label_names", "max_pixels")


def external_sets(external_dir: Any) -> list[dict]:
    """The external sets named by the ``external_dir`` key, as ``[{"name", "path", "options"}]``.

    Args:
        external_dir: None or ``""`` (none), a path, or a list whose entries are paths or dicts
            ``{"path": ..., "name": ..., <load options>}`` (options: the keyword arguments of
            :func:`medbundle.data.load_labelled`, e.g. ``image_column``, ``label_column``, ``finding_map`` of a
            metadata table; they override the bundle's).

    Raises:
        OptionError: for an entry that is neither a path nor such a dict, an option that does not exist, or two sets
            with one name.
    """
    if external_dir is None or external_dir == "" or external_dir == []:
        return []
    entries = external_dir if isinstance(external_dir, (list, tuple)) else [external_dir]
    sets, names = [], set()
    for entry in entries:
        if isinstance(entry, (str, os.PathLike)):
            entry = {"path": entry}
        if not isinstance(entry, Mapping) or "path" not in entry:
            raise OptionError(f"external_dir entry {entry!r} is neither a path nor a dict with a 'path': give "
                              "--external_dir a path or a list of paths / {'path': ..., 'name': ..., options}")
        unknown = sorted(set(entry) - {"path", "name"} - set(_LOAD_OPTIONS))
        if unknown:
            raise OptionError(f"external_dir entry for {entry['path']}: unknown option(s) {unknown}; known: "
                              f"{sorted(_LOAD_OPTIONS)} (the keyword arguments of medbundle.data.load_labelled)")
        path = Path(str(entry["path"])).expanduser()
        name = str(entry.get("name") or path.stem or path.resolve().name)
        if name in names:
            raise OptionError(f"external_dir: two sets are named '{name}': give each a different 'name' "
                              "({'path': ..., 'name': ...})")
        names.add(name)
        sets.append({"name": name, "path": str(path),
                     "options": {k: v for k, v in entry.items() if k not in ("path", "name")}})
    return sets


def _ci(d: Mapping | None) -> dict | None:
    if not isinstance(d, Mapping) or d.get("value") is None:
        return None
    return {k: d.get(k) for k in ("value", "lo", "hi", "k", "n") if d.get(k) is not None}


def _summary(name: str, metrics: Mapping, class_names: Sequence[str]) -> dict:
    """The figures of one set's ``metrics.json`` compared across sets."""
    clinical = metrics.get("clinical", {})
    per_class = clinical.get("per_class", {})
    return {
        "name": name,
        "n": metrics.get("n"),
        "accuracy": _ci(clinical.get("accuracy")),
        "auc_macro_ovr": _ci(clinical.get("auc_macro_ovr")),
        "sensitivity": {c: _ci(per_class.get(c, {}).get("sensitivity")) for c in class_names},
        "specificity": {c: _ci(per_class.get(c, {}).get("specificity")) for c in class_names},
        "support": {c: int((metrics.get("per_class", {}).get(c) or {}).get("support") or 0) for c in class_names},
    }


def _by_source(labels: np.ndarray, preds: np.ndarray, sources: Sequence[str], class_names: Sequence[str]) -> dict:
    """Accuracy and each class's sensitivity with Wilson intervals per source."""
    out = {}
    for source in sorted(set(sources)):
        sel = np.asarray([s == source for s in sources])
        y, p = labels[sel], preds[sel]
        out[source] = {
            "n": int(sel.sum()),
            "accuracy": proportion_with_ci(int((y == p).sum()), int(sel.sum())),
            "sensitivity": {c: proportion_with_ci(int(((y == i) & (p == i)).sum()), int((y == i).sum()))
                            for i, c in enumerate(class_names) if (y == i).any()},
        }
    return out


def compare_sets(internal: dict | None, externals: Sequence[dict], class_names: Sequence[str]) -> dict:
    """Side-by-side figures of the internal test split and the external sets, with the drop of each external one.

    Args:
        internal: the internal test split's summary (see :func:`_summary`), or None when it was not scored.
        externals: the external sets' summaries.
        class_names: the classes.

    Returns:
        ``{"internal", "external": [... with "drop": {"accuracy", "auc_macro_ovr", "sensitivity": {class}}]}``;
        a drop is external minus internal (negative: worse outside), None where either figure is undefined.
    """
    def diff(a: Mapping | None, b: Mapping | None) -> float | None:
        return None if not a or not b else float(b["value"]) - float(a["value"])

    rows = []
    for ext in externals:
        row = dict(ext)
        if internal is not None:
            row["drop"] = {
                "accuracy": diff(internal["accuracy"], ext["accuracy"]),
                "auc_macro_ovr": diff(internal["auc_macro_ovr"], ext["auc_macro_ovr"]),
                "sensitivity": {c: diff(internal["sensitivity"][c], ext["sensitivity"][c]) for c in class_names},
            }
        rows.append(row)
    return {"internal": internal, "external": rows, "class_names": list(class_names),
            "ci": "95 %: Wilson for proportions, DeLong for AUC", "drop": "external minus internal"}


def _fmt(d: Mapping | None) -> str:
    if not d:
        return "n/a"
    return f"{d['value']:.3f} [{d['lo']:.3f}, {d['hi']:.3f}]" if d.get("lo") is not None else f"{d['value']:.3f}"


def _markdown(comparison: dict) -> str:
    names = comparison["class_names"]
    head = ["set", "n", "accuracy", "macro AUC"] + [f"sensitivity {c}" for c in names]
    lines = ["# External evaluation", "", f"95 % intervals ({comparison['ci']}); drop = {comparison['drop']}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    sets = ([comparison["internal"]] if comparison["internal"] else []) + comparison["external"]
    for s in sets:
        label = s["name"]
        cells = [label, str(s["n"]), _fmt(s["accuracy"]), _fmt(s["auc_macro_ovr"])]
        cells += [f"{_fmt(s['sensitivity'][c])} (n={s['support'][c]})" for c in names]
        lines.append("| " + " | ".join(cells) + " |")
    for s in comparison["external"]:
        if s.get("training_copies_left_out"):
            lines += ["", f"{s['name']}: {len(s['training_copies_left_out'])} images left out as near duplicates of "
                      f"training/validation images: {', '.join(map(str, s['training_copies_left_out']))}"]
    drops = [s for s in comparison["external"] if s.get("drop")]
    if drops:
        lines += ["", "## Drop from internal to external", ""]
        for s in drops:
            d = s["drop"]
            parts = [f"accuracy {d['accuracy']:+.3f}" if d["accuracy"] is not None else "accuracy n/a"]
            parts.append(f"macro AUC {d['auc_macro_ovr']:+.3f}" if d["auc_macro_ovr"] is not None else "macro AUC n/a")
            parts += [f"sensitivity {c} {v:+.3f}" for c, v in d["sensitivity"].items() if v is not None]
            lines.append(f"- {s['name']}: " + ", ".join(parts))
    for s in comparison["external"]:
        if s.get("by_source"):
            lines += ["", f"## {s['name']} by source", "", "| source | n | accuracy | sensitivities |", "|---|---|---|---|"]
            for src, r in s["by_source"].items():
                sens = ", ".join(f"{c} {_fmt(v)}" for c, v in r["sensitivity"].items())
                lines.append(f"| {src} | {r['n']} | {_fmt(r['accuracy'])} | {sens} |")
    return "\n".join(lines) + "\n"


class ExternalEvaluation:
    """Score external sets with the trained network and compare them with the internal test split.

    Each set is read by :func:`medbundle.data.load_labelled` (a folder in any layout, or a metadata table), run
    through the test split's preprocessing, network, inferer and postprocessing, and reported by
    :class:`medbundle.handlers.ClassificationReport` into ``<eval_dir>/external/<name>/`` with the calibration of the
    model applied unchanged. Then ``external.json``, ``external.md`` and ``external.png`` in ``eval_dir`` put the sets
    side by side with the internal test split (read from ``<eval_dir>/metrics.json``).

    Args:
        external_dir: the sets (see :func:`external_sets`); None: nothing is done.
        eval_dir: the evaluation folder (the internal test report's).
        class_names: the classes.
        network: the trained network (its weights already loaded by the test evaluator).
        transform: the test split's preprocessing.
        inferer: the test split's inferer.
        postprocessing: the test split's postprocessing (softmax into ``pred``).
        device: the device.
        batch_size: images per batch.
        load_options: keyword arguments of :func:`medbundle.data.load_labelled` for every set (the bundle's class
            aliases, table columns, ...); a set's own options override them.
        calibration_path: the model's calibration record, applied to every set.
        model_path: the model file the record must belong to.
        positive_class: the binary decision's class (see ``evaluate.json``).
        prevalence: the positive class's prevalence for PPV / NPV.
        uncertainty: ``"tta"``, ``"mc_dropout"`` or ``"none"`` (per-image entropy, as for the test split).
        uncertainty_passes: forward passes for the uncertainty.
        training_items: the items the model was trained and validated on; with ``exclude_training_copies``, external
            images that are near duplicates of them (:func:`medbundle.audit.near_duplicate_clusters`) are left out
            and listed in the comparison: public collections copy each other (6 of Figure1's 55 films are in
            COVID-QU-Ex), and a film the model was trained on is not external evidence.
        exclude_training_copies: leave those copies out (default); False scores every image.
    """

    def __init__(
        self,
        external_dir: Any,
        eval_dir: str,
        class_names: Sequence[str],
        network: torch.nn.Module,
        transform: Any,
        inferer: Any,
        postprocessing: Any,
        device: Any,
        batch_size: int = 32,
        load_options: Mapping[str, Any] | None = None,
        calibration_path: str | None = None,
        model_path: str | None = None,
        positive_class: Any = None,
        prevalence: float | None = None,
        uncertainty: str = "none",
        uncertainty_passes: int = 8,
        training_items: Sequence[Mapping] | None = None,
        exclude_training_copies: bool = True,
    ) -> None:
        self.sets = external_sets(external_dir)
        self.eval_dir = Path(eval_dir)
        self.class_names = list(class_names)
        self.network, self.transform, self.inferer = network, transform, inferer
        self.postprocessing, self.device, self.batch_size = postprocessing, device, int(batch_size)
        self.load_options = {k: v for k, v in dict(load_options or {}).items() if v is not None}
        self.calibration_path, self.model_path = calibration_path, model_path
        self.positive_class, self.prevalence = positive_class, prevalence
        self.uncertainty, self.uncertainty_passes = uncertainty, int(uncertainty_passes)
        self.training_items = list(training_items or [])
        self.exclude_training_copies = as_bool(exclude_training_copies, "exclude_training_copies")
        self.comparison: dict = {}

    def drop_training_copies(self, entry: Mapping, items: list[dict]) -> tuple[list[dict], list[str]]:
        """``items`` without the near duplicates of the training items, and the ids left out."""
        train = [str(t["image"]) for t in self.training_items if "#" not in Path(str(t["image"])).name]
        ours = [i for i, item in enumerate(items) if "#" not in Path(str(item["image"])).name]
        if not (self.exclude_training_copies and train and ours):
            return items, []
        from medbundle.audit.duplicates import near_duplicate_clusters

        clusters = near_duplicate_clusters(train + [items[i]["image"] for i in ours])
        seen = set(clusters[: len(train)])
        copies = {ours[k] for k, c in enumerate(clusters[len(train):]) if c in seen}
        dropped = [items[i]["id"] for i in sorted(copies)]
        if dropped:
            logger.warning("external set '%s': %d images are near duplicates of training/validation images and are "
                           "left out (exclude_training_copies): %s", entry["name"], len(dropped), dropped[:10])
        return [item for i, item in enumerate(items) if i not in copies], dropped

    def load(self, entry: Mapping) -> list[dict]:
        """The labelled items of one external set."""
        from medbundle.data import load_labelled
        from medbundle.data.errors import DataError

        if not Path(entry["path"]).expanduser().exists():
            raise DataError(f"{entry['path']}: no such file or folder (external_dir set '{entry['name']}'). Check the "
                            "path given in --external_dir.")
        items = load_labelled(entry["path"], self.class_names, **{**self.load_options, **entry["options"]})
        unlabelled = [item["id"] for item in items if "label" not in item]
        if unlabelled:
            raise DataError(f"{entry['path']}: {len(unlabelled)} external images have no label (e.g. "
                            f"{unlabelled[:3]}): an external set is scored against its labels. Put the images in "
                            "class folders, give a datalist with labels, or a metadata table with label_column.")
        return items

    def score(self, entry: Mapping, items: list[dict]) -> dict:
        """Run the network over one set and write its report; its metrics plus the per-source figures."""
        from monai.data import DataLoader, Dataset
        from monai.engines import SupervisedEvaluator

        from medbundle.handlers import ClassificationReport, PredictiveUncertainty

        out = self.eval_dir / "external" / entry["name"]
        uncertainty = PredictiveUncertainty(self.uncertainty, self.uncertainty_passes)
        report = ClassificationReport(str(out), self.class_names, calibration_path=self.calibration_path,
                                      model_path=self.model_path, uncertainty=uncertainty,
                                      positive_class=self.positive_class, prevalence=self.prevalence)
        loader = DataLoader(Dataset(items, self.transform), batch_size=self.batch_size, shuffle=False, num_workers=0)
        evaluator = SupervisedEvaluator(device=self.device, val_data_loader=loader, network=self.network,
                                        inferer=self.inferer, postprocessing=self.postprocessing,
                                        val_handlers=[uncertainty, report])
        evaluator.run()
        summary = _summary(entry["name"], report.metrics, self.class_names)
        summary["path"] = entry["path"]
        groups = {item.get("group") for item in items if item.get("group") is not None}
        if groups:
            summary["patients"] = len(groups)
        sources = {item["id"]: str(item["source"]) for item in items if item.get("source") not in (None, "")}
        if sources:
            ids = list(report.ids)
            probs = np.stack(report.probs)
            keep = [i for i, x in enumerate(ids) if x in sources]
            summary["by_source"] = _by_source(np.asarray(report.labels)[keep], probs[keep].argmax(1),
                                              [sources[ids[i]] for i in keep], self.class_names)
        return summary

    def run(self) -> dict:
        """Score every external set and write the comparison; the comparison (also ``self.comparison``)."""
        if not self.sets:
            return {}
        self.network.eval()
        internal = None
        metrics_path = self.eval_dir / "metrics.json"
        if metrics_path.is_file():
            internal = _summary("internal test", json.loads(metrics_path.read_text()), self.class_names)
        externals = []
        for entry in self.sets:
            items, dropped = self.drop_training_copies(entry, self.load(entry))
            logger.info("external set '%s': %d images from %s", entry["name"], len(items), entry["path"])
            if not items:
                logger.warning("external set '%s': every image is a copy of a training/validation image, nothing "
                               "to score (exclude_training_copies false scores them anyway)", entry["name"])
                externals.append({"name": entry["name"], "path": entry["path"], "n": 0, "accuracy": None,
                                  "auc_macro_ovr": None, "sensitivity": dict.fromkeys(self.class_names),
                                  "specificity": dict.fromkeys(self.class_names),
                                  "support": dict.fromkeys(self.class_names, 0), "training_copies_left_out": dropped})
                continue
            summary = self.score(entry, items)
            summary["training_copies_left_out"] = dropped
            externals.append(summary)
        self.comparison = compare_sets(internal, externals, self.class_names)
        with atomic_write(self.eval_dir / "external.json", "w") as f:
            json.dump(self.comparison, f, indent=2)
        with atomic_write(self.eval_dir / "external.md", "w") as f:
            f.write(_markdown(self.comparison))
        plot_external(self.comparison, self.eval_dir / "external.png")
        for s in self.comparison["external"]:
            drop = s.get("drop", {}).get("accuracy")
            logger.info("external set '%s': n=%s accuracy %s (%s internal), macro AUC %s", s["name"], s["n"],
                        _fmt(s["accuracy"]), "n/a" if drop is None else f"{drop:+.3f} from", _fmt(s["auc_macro_ovr"]))
        return self.comparison
