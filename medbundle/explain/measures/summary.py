"""Summary of per-image measure records: mean, standard deviation, median and count of every numeric key.

Conventions (inputs, NaN, per-image records): see :mod:`medbundle.explain.measures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["summarise"]


def summarise(records: Sequence[dict[str, Any]], exclude: Sequence[str] = ("index",)) -> dict[str, dict[str, float]]:
    """Mean, standard deviation, median and count of every numeric key of ``records``, ignoring NaN.

    For each key whose values are all real numbers or None (= NaN); bools, strings, lists and ``exclude`` are skipped:
    ``mean = sum x / n``, ``std = sqrt(sum (x - mean)^2 / n)`` (population, ddof=0), the median, and ``n`` = the
    number of non-NaN values (mean/std/median are NaN when ``n == 0``).

    Args:
        records: per-image dicts (as returned by the measures above).
        exclude: keys not to summarise (identifiers).

    Returns:
        ``{key: {"mean", "std", "median", "n"}}``.
    """
    values: dict[str, list[float]] = {}
    skip = set(exclude)
    for rec in records:
        for k, x in rec.items():
            if k in skip:
                continue
            x = float("nan") if x is None else x
            if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
                skip.add(k)
                values.pop(k, None)
                continue
            values.setdefault(k, []).append(float(x))
    out = {}
    for k, xs in values.items():
        a = np.asarray(xs, dtype=np.float64)
        a = a[~np.isnan(a)]
        nan = float("nan")
        out[k] = {
            "mean": float(a.mean()) if a.size else nan, "std": float(a.std()) if a.size else nan,
            "median": float(np.median(a)) if a.size else nan, "n": int(a.size),
        }
    return out
