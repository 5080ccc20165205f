"""Input checks shared by the metrics: labels / probabilities to validated numpy arrays, JSON-safe floats.

Every metric (and every plot of :mod:`medbundle.plots`) works on plain numpy arrays: ``y_true``
integer labels of shape ``(N,)`` and ``probs`` class probabilities of shape ``(N, C)``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from medbundle.utils import to_numpy

__all__: list[str] = []


def _as_arrays(y_true: Any, probs: Any, class_names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ``y_true`` (N,) and ``probs`` (N, C) to numpy arrays."""
    probs = to_numpy(probs).astype(np.float64, copy=False)
    if probs.ndim != 2:
        raise ValueError(f"probs must have shape (N, C), got {probs.shape}.")
    n, c = probs.shape
    if n == 0:
        raise ValueError("probs is empty: nothing to evaluate.")
    if not np.all(np.isfinite(probs)):
        raise ValueError("probs contains NaN or infinite values.")
    if class_names is not None:
        if len(class_names) != c:
            raise ValueError(f"{len(class_names)} class names for {c} probability columns.")
        if len(set(map(str, class_names))) != c:
            raise ValueError(f"class names must be unique, got {list(class_names)}.")
    if y_true is None:
        return None, probs  # type: ignore[return-value]
    y = to_numpy(y_true).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"y_true has {y.shape[0]} labels but probs has {n} rows.")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError("y_true must hold integer class indices.")
    elif y.dtype.kind not in "iub":
        raise ValueError(f"y_true must hold integer class indices, got dtype {y.dtype}.")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= c:
        raise ValueError(f"y_true values must be in [0, {c - 1}], got range [{y.min()}, {y.max()}].")
    return y, probs


def _finite_or_none(x: Any) -> float | None:
    """A python float, or ``None`` for NaN / inf (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
