"""Class confounds: what differs between the classes (or the sources) other than the disease, and how well a trivial
classifier on those facts alone tells them apart.

- :func:`confound_table`: per source and class, image size, aspect, bit depth, colour mode, format, file size and
  intensity statistics.
- :func:`confound_checks`: a shallow decision tree (depth 3, classes weighted equally) trained on the *metadata*
  (width, height, aspect, bit depth, channels, mode, format) or on the *intensity statistics* (mean, standard
  deviation, 1st/5th/50th/95th/99th percentiles) alone, scored by balanced accuracy in stratified 5-fold
  cross-validation, to predict the class within each source, and the source when there are several. A score at
  least :data:`FLAG_MARGIN` (0.2) above chance (1 / number of classes) is flagged: a network can reach it without
  looking at the anatomy, so it must not be allowed to (resize, one colour mode, one format; or data from the same
  sources for every class). On the shared data, metadata tells head CT's classes apart at 0.76
  (chance 0.5; width) and the chest data sets from one another at 0.99; COVID-QU-Ex's and Kermany's classes have one
  size, mode and format each and score chance. Intensity statistics also carry some of the disease itself
  (opacities whiten the lungs: Kermany 0.80 against 0.5, COVID-QU-Ex 0.59 against 0.33), so an intensity flag asks
  for a look at exposure, processing and sources rather than proving a confound.
- :func:`quick_confounds`: the metadata check alone from image headers (no pixels decoded), for a datalist before
  training: warnings as text.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["confound_table", "confound_checks", "quick_confounds", "header_facts", "METADATA_FEATURES",
           "INTENSITY_FEATURES", "FLAG_MARGIN"]

logger = logging.getLogger("medbundle.audit")

METADATA_FEATURES = ("width", "height", "aspect", "bit_depth", "channels", "mode", "format")
INTENSITY_FEATURES = ("mean", "std", "p01", "p05", "p50", "p95", "p99")
_CATEGORICAL = ("mode", "format")
FLAG_MARGIN = 0.2
_FOLDS = 5


def _values(series: pd.Series) -> str:
    """``"RGB 60, RGBA 10"``: the values of a column and how often they occur, most frequent first."""
    counts = series.astype(str).value_counts()
    return ", ".join(f"{v} {n}" for v, n in counts.items())


def confound_table(images: pd.DataFrame) -> pd.DataFrame:
    """Per ``source`` and ``class``: how many images, and their size, aspect, depth, mode, format and intensities.

    Args:
        images: one row per readable image with ``source``, ``class`` and the :data:`hashing.INFO_COLUMNS`.
    """
    rows = []
    for (source, cls), g in images.groupby(["source", "class"], sort=True):
        row = {"source": source, "class": cls, "images": len(g)}
        for c in ("width", "height", "aspect"):
            v = pd.to_numeric(g[c], errors="coerce")
            row.update({f"{c}_median": v.median(), f"{c}_min": v.min(), f"{c}_max": v.max()})
        row.update(bit_depth=_values(g["bit_depth"]), mode=_values(g["mode"]), format=_values(g["format"]),
                   file_size_median=pd.to_numeric(g["file_size"], errors="coerce").median())
        for c in INTENSITY_FEATURES:
            row[f"{c}_median"] = pd.to_numeric(g[c], errors="coerce").median()
        rows.append(row)
    return pd.DataFrame(rows)


def _feature_matrix(images: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    numeric = [f for f in features if f not in _CATEGORICAL]
    x = images[numeric].apply(pd.to_numeric, errors="coerce").fillna(-1.0)
    categorical = [f for f in features if f in _CATEGORICAL]
    if categorical:
        x = pd.concat([x, pd.get_dummies(images[categorical].astype(str), dtype=float)], axis=1)
    return x


def _trivial_score(x: pd.DataFrame, y: np.ndarray) -> tuple[float, str] | None:
    """Cross-validated balanced accuracy of a depth-3 tree, and its most important feature; None if too few."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.tree import DecisionTreeClassifier

    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        return None
    tree = DecisionTreeClassifier(max_depth=3, class_weight="balanced", random_state=0)
    folds = StratifiedKFold(n_splits=min(_FOLDS, int(counts.min())), shuffle=True, random_state=0)
    predicted = cross_val_predict(tree, x.to_numpy(), y, cv=folds)
    tree.fit(x.to_numpy(), y)
    top = str(x.columns[int(np.argmax(tree.feature_importances_))]) if tree.feature_importances_.any() else ""
    return float(balanced_accuracy_score(y, predicted)), top


def _check(images: pd.DataFrame, target: str, label: str, source: str, name: str,
           features: Sequence[str]) -> dict | None:
    y = images[target].astype(str).to_numpy()
    scored = _trivial_score(_feature_matrix(images, features), y)
    if scored is None:
        return None
    score, top = scored
    chance = 1.0 / len(np.unique(y))
    return {"predicts": label, "source": source, "features": name, "images": len(y), "classes": len(np.unique(y)),
            "balanced_accuracy": round(score, 4), "chance": round(chance, 4), "most_telling": top,
            "flagged": bool(score >= chance + FLAG_MARGIN)}


def confound_checks(images: pd.DataFrame, metadata: Sequence[str] = METADATA_FEATURES,
                    intensity: Sequence[str] | None = INTENSITY_FEATURES) -> pd.DataFrame:
    """How well metadata alone, and intensity statistics alone, predict the class (per source) and the source.

    Args:
        images: one row per readable image with ``source``, ``class`` and the feature columns.
        metadata: metadata feature columns.
        intensity: intensity feature columns; None: no intensity check.

    Returns:
        One row per check: ``predicts`` (``class`` or ``source``), ``source`` (the source whose classes are
        predicted; ``*`` for all), ``features``, ``images``, ``classes``, ``balanced_accuracy``, ``chance``,
        ``most_telling`` (feature the tree splits on most) and ``flagged``.
    """
    feature_sets = [("metadata", metadata)] + ([("intensity", intensity)] if intensity else [])
    rows = []
    for source, g in images.groupby("source", sort=True):
        labelled = g[g["class"].astype(str) != ""]
        rows += [_check(labelled, "class", "class", str(source), n, f) for n, f in feature_sets]
    if images["source"].nunique() > 1:
        rows += [_check(images, "source", "source", "*", n, f) for n, f in feature_sets]
    columns = ["predicts", "source", "features", "images", "classes", "balanced_accuracy", "chance", "most_telling",
               "flagged"]
    return pd.DataFrame([r for r in rows if r is not None], columns=columns)


def header_facts(path: str | os.PathLike) -> dict | None:
    """Width, height, aspect, bit depth, channels, mode and format from an image file's header; None if unreadable."""
    from PIL import Image

    from medbundle.audit.hashing import _BIT_DEPTH, _CHANNELS
    from medbundle.data.dicom import is_dicom

    try:
        if is_dicom(path):
            import pydicom

            ds = pydicom.dcmread(path, stop_before_pixels=True)
            width, height = int(ds.Columns), int(ds.Rows)
            facts = {"mode": f"DICOM {ds.get('PhotometricInterpretation', '')}", "format": "DICOM",
                     "bit_depth": int(ds.get("BitsStored", 16) or 16), "channels": int(ds.get("SamplesPerPixel", 1))}
        else:
            with Image.open(path) as im:
                width, height = im.size
                facts = {"mode": im.mode, "format": im.format, "bit_depth": _BIT_DEPTH.get(im.mode, 8),
                         "channels": _CHANNELS.get(im.mode, 1)}
    except Exception:  # not a PIL or DICOM file (NIfTI, .mat slice, parquet row) or damaged: not checked
        return None
    return {"width": width, "height": height, "aspect": width / height if height else 0.0, **facts}


def quick_confounds(items: Sequence[dict], class_names: Sequence[str], max_images: int = 5000,
                    seed: int = 0) -> list[str]:
    """Warnings when image headers alone (size, aspect, bit depth, mode, format) give the class away.

    Cheap: headers only, no pixels decoded; images that are not PIL or DICOM files (NIfTI, ``.mat`` slices, parquet
    rows) are not checked.

    Args:
        items: datalist items ``{"image": path, "label": class index}``.
        class_names: the class names, by index.
        max_images: at most this many items are read (a random sample, ``seed``).
        seed: the sample's seed.

    Returns:
        One line per problem found (empty when none), each saying what predicts the class, how well, and what to do.
    """
    items = [it for it in items if "label" in it and isinstance(it.get("image"), (str, os.PathLike))]
    if len(items) > max_images:
        items = random.Random(seed).sample(items, max_images)
    rows = []
    for it in items:
        facts = header_facts(it["image"])
        if facts is not None:
            label = it["label"]
            label = int(np.argmax(label)) if np.ndim(label) else int(label)
            name = class_names[label] if 0 <= label < len(class_names) else str(label)
            rows.append({**facts, "class": name, "source": "data"})
    if not rows:
        return []
    images = pd.DataFrame(rows)
    checks = confound_checks(images, intensity=None)
    warnings = []
    for row in checks[checks["flagged"]].itertuples():
        per_class = "; ".join(
            f"{cls}: {int(g['width'].median())}x{int(g['height'].median())} px median, {_values(g['mode'])}"
            for cls, g in images.groupby("class", sort=True))
        warnings.append(
            f"image headers alone predict the class (balanced accuracy {row.balanced_accuracy:.2f}, chance "
            f"{row.chance:.2f}, most telling: {row.most_telling}) [{per_class}]: a model can learn this instead of "
            "the disease. Resize every image to one size and one mode before training (the bundles do), and audit the "
            "data for its sources: python -m medbundle.audit <data folder>.")
    return warnings
