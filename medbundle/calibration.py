"""``calibration.json``: what evaluation fits on the validation split, stored beside ``model.pt`` and applied to new data.

One record (JSON, data only) holds the temperature (:mod:`medbundle.metrics.temperature`), the operating threshold
of a binary decision (:mod:`medbundle.metrics.threshold`) and the split-conformal quantile
(:mod:`medbundle.metrics.conformal`), the split and number of images they were fitted on, and the SHA-256 of the
model file they belong to. Evaluation writes it (:func:`fit_calibration`, :func:`save_calibration`); evaluation,
inference and any later predictor read it with :func:`load_calibration` (which ignores, with a warning, a record of
another model) and apply it with :func:`apply_calibration`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medbundle.metrics.conformal import conformal_quantile, prediction_sets
from medbundle.metrics.temperature import apply_temperature, calibration_summary, fit_temperature
from medbundle.metrics.threshold import choose_threshold
from medbundle.metrics.utils import _as_arrays
from medbundle.utils import atomic_write_json, jsonable

__all__ = ["CALIBRATION_JSON", "resolve_positive_class", "fit_calibration", "save_calibration", "load_calibration",
           "record_views", "calibrated_views", "apply_calibration", "calibration_columns", "file_sha256"]

logger = logging.getLogger("medbundle.calibration")

CALIBRATION_JSON = "calibration.json"
_VERSION = 1


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks; remembered while the file is the same one (same resolved
    path, inode, size and modification time: a file replaced, even atomically, is read again), so a command that
    checks one model file several times at start-up reads it once."""
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _sha256(path: str, inode: int, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_positive_class(positive_class: Any, class_names: Sequence[str]) -> int | None:
    """The column index of the positive class of a binary decision.

    Args:
        positive_class: a class name, a column index, or ``None`` (the last class of a 2-class bundle; no binary
            decision for more classes).
        class_names: the bundle's class names.

    Raises:
        ValueError: a name or index that is not one of the classes.
    """
    names = [str(c) for c in class_names]
    if positive_class is None:
        return len(names) - 1 if len(names) == 2 else None
    if isinstance(positive_class, (int, np.integer)) and not isinstance(positive_class, bool):
        if 0 <= int(positive_class) < len(names):
            return int(positive_class)
    elif str(positive_class) in names:
        return names.index(str(positive_class))
    raise ValueError(f"positive_class {positive_class!r} is not a class of this bundle ({names}): "
                     "pass one of those names (evaluate key positive_class), or null")


def fit_calibration(y_true: Any, probs: Any, class_names: Sequence[str], positive_class: Any = None,
                    threshold_rule: str = "youden", alpha: float = 0.1, split: str = "val") -> dict:
    """Fit temperature, operating threshold and conformal quantile on labelled (validation) outputs.

    The temperature is fitted first; threshold and conformal quantile are fitted on the temperature-scaled
    probabilities, the ones they are later applied to. With one class only in the data the threshold falls back to
    ``fixed:0.5`` (with a warning).

    Args:
        y_true: integer class indices, shape ``(N,)``.
        probs: the model's class probabilities, shape ``(N, C)``.
        class_names: ``C`` class names.
        positive_class: see :func:`resolve_positive_class`.
        threshold_rule: see :func:`medbundle.metrics.choose_threshold`.
        alpha: conformal miscoverage rate.
        split: the name of the split the outputs come from (recorded).

    Returns:
        the record: ``{"version", "class_names", "temperature", "threshold": {"positive_class", "value", "rule",
        "applies_to", "val_sensitivity", "val_specificity"} or None, "conformal": {"alpha", "qhat", "score",
        "level"}, "fitted_on": {"split", "n", "class_counts"}, "val_before", "val_after"}``.
    """
    y, p = _as_arrays(y_true, probs, class_names)
    names = [str(c) for c in class_names]
    k = resolve_positive_class(positive_class, names)
    temperature = fit_temperature(y, p)
    pc = apply_temperature(p, temperature)
    threshold = None
    if k is not None:
        try:
            chosen = choose_threshold(y == k, pc[:, k], threshold_rule)
        except ValueError as e:
            if "only one" not in str(e):
                raise
            logger.warning("calibration: %s; using fixed:0.5", e)
            chosen = choose_threshold(y == k, pc[:, k], "fixed:0.5")
        threshold = {"positive_class": names[k], "value": chosen["value"], "rule": chosen["rule"],
                     "applies_to": f"calibrated p({names[k]}) >= value",
                     "val_sensitivity": chosen["sensitivity"], "val_specificity": chosen["specificity"]}
    conformal = conformal_quantile(y, pc, alpha)
    record = {
        "version": _VERSION,
        "class_names": names,
        "temperature": temperature,
        "threshold": threshold,
        "conformal": {k2: conformal[k2] for k2 in ("alpha", "qhat", "score", "level")},
        "fitted_on": {"split": split, "n": int(len(y)),
                      "class_counts": {n: int(np.sum(y == i)) for i, n in enumerate(names)}},
        "val_before": calibration_summary(y, p),
        "val_after": calibration_summary(y, pc),
    }
    return jsonable(record)


def save_calibration(path: str | os.PathLike, record: dict, model_path: str | os.PathLike) -> dict:
    """Write ``record`` atomically to ``path`` with the SHA-256 of ``model_path`` (the model it belongs to).

    Returns:
        the record as written.
    """
    out = dict(record, model_sha256=file_sha256(model_path), model_file=Path(model_path).name)
    atomic_write_json(path, jsonable(out))
    logger.info("calibration: T=%.3f, %s, conformal qhat=%.4f (alpha %s) fitted on %s n=%d -> %s",
                out["temperature"], "no threshold" if out["threshold"] is None else
                f"threshold {out['threshold']['value']:.4f} ({out['threshold']['rule']})",
                out["conformal"]["qhat"], out["conformal"]["alpha"], out["fitted_on"]["split"],
                out["fitted_on"]["n"], path)
    return out


def load_calibration(path: str | os.PathLike | None, model_path: str | os.PathLike | None = None,
                     class_names: Sequence[str] | None = None, views: int | None = None) -> dict | None:
    """Read a calibration record; ``None`` (with a warning where something is wrong) when it cannot be used.

    Args:
        path: the ``calibration.json``; ``None`` or a missing file: no calibration (no warning).
        model_path: when given, the record is used only if its ``model_sha256`` is this file's.
        class_names: when given, the record is used only if it has the same classes.
        views: when given, the number of test-time views the probabilities to calibrate average
            (:class:`medbundle.inferers.TTAInferer`); the record is used only if it was fitted on as many.
    """
    if path is None or not Path(path).is_file():
        return None
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        float(record["temperature"]), float(record["conformal"]["qhat"])
        if not 1 <= int(record.get("test_time_views", 1)) <= 10:
            raise ValueError(f"test_time_views {record['test_time_views']!r} is not 1 to 10")
    except (OSError, ValueError, KeyError, TypeError) as e:
        logger.warning("calibration: ignoring %s, not a calibration record (%s): run evaluate.json again", path, e)
        return None
    if model_path is not None and Path(model_path).is_file():
        if record.get("model_sha256") != file_sha256(model_path):
            logger.warning("calibration: ignoring %s, fitted for another model than %s: run evaluate.json again",
                           path, model_path)
            return None
    if class_names is not None and list(record.get("class_names", [])) != [str(c) for c in class_names]:
        logger.warning("calibration: ignoring %s, its classes %s are not %s", path, record.get("class_names"),
                       list(class_names))
        return None
    fitted = record_views(record)
    if views is not None and fitted != int(views):
        logger.warning("calibration: ignoring %s, fitted on the mean of %d test-time view(s) and these predictions "
                       "average %d: pass --tta_views %d, or run evaluate.json again with --tta_views %d", path, fitted,
                       int(views), fitted, int(views))
        return None
    return record


def record_views(record: dict) -> int:
    """The number of test-time views the probabilities of a record read by :func:`load_calibration` averaged (1 when
    the record says nothing: records of earlier versions were fitted on single passes)."""
    return int(record.get("test_time_views", 1))


def calibrated_views(path: str | os.PathLike | None, model_path: str | os.PathLike | None = None) -> int:
    """The test-time views inference should average so that the calibration record at ``path`` applies: the number it
    was fitted with (evaluate.json's ``tta_views``), or 1 when there is no usable record for ``model_path``."""
    if path is None or not Path(path).is_file():
        return 1
    record = load_calibration(path, model_path)
    return 1 if record is None else record_views(record)


def apply_calibration(probs: Any, record: dict) -> dict:
    """Apply a calibration record to class probabilities.

    Args:
        probs: the model's class probabilities, shape ``(N, C)``.
        record: from :func:`fit_calibration` / :func:`load_calibration`.

    Returns:
        ``{"probs": calibrated (N, C), "sets": boolean (N, C), "set_size": (N,), "refer": boolean (N,),
        "decision": (N,) boolean (called positive) or None, "positive_class": index or None}``.
    """
    _, p = _as_arrays(None, probs, record.get("class_names"))
    pc = apply_temperature(p, record["temperature"])
    sets = prediction_sets(pc, record["conformal"]["qhat"])
    size = sets.sum(axis=1)
    out = {"probs": pc, "sets": sets, "set_size": size, "refer": size != 1, "decision": None, "positive_class": None}
    thr = record.get("threshold")
    if thr:
        k = [str(c) for c in record["class_names"]].index(thr["positive_class"])
        out.update(decision=pc[:, k] >= float(thr["value"]), positive_class=k)
    return out


def calibration_columns(applied: dict | None, class_names: Sequence[str], entropy: Any = None) -> dict[str, list]:
    """Extra ``predictions.csv`` columns: calibrated probabilities, decision, prediction set, refer, entropy.

    Args:
        applied: from :func:`apply_calibration`, or ``None`` (entropy only).
        class_names: the class names.
        entropy: optional predictive entropy per row.

    Returns:
        ``{column: values}`` in column order: ``cal_prob_<class>``..., ``decision`` (binary: the positive class or
        ``not <class>``), ``prediction_set`` (class names joined by ``|``), ``set_size``, ``refer`` (0/1), ``entropy``.
    """
    names = [str(c) for c in class_names]
    cols: dict[str, list] = {}
    if applied is not None:
        for k, name in enumerate(names):
            cols[f"cal_prob_{name}"] = [f"{v:.6g}" for v in applied["probs"][:, k]]
        if applied["decision"] is not None:
            pos = names[applied["positive_class"]]
            cols["decision"] = [pos if d else f"not {pos}" for d in applied["decision"]]
        cols["prediction_set"] = ["|".join(n for n, s in zip(names, row) if s) for row in applied["sets"]]
        cols["set_size"] = [int(v) for v in applied["set_size"]]
        cols["refer"] = [int(v) for v in applied["refer"]]
    if entropy is not None:
        cols["entropy"] = [f"{v:.6g}" for v in np.asarray(entropy, dtype=np.float64).reshape(-1)]
    return cols
