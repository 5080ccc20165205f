"""medbundle.explain.measures.summary: summarise ignores NaN."""

from __future__ import annotations

import math

from medbundle.explain.measures import summarise


def test_summarise_ignores_nan():
    recs = [{"index": 0, "a": 1.0, "b": "x", "c": float("nan")}, {"index": 1, "a": float("nan"), "c": None},
            {"index": 2, "a": 3, "b": "y"}]
    s = summarise(recs)
    assert set(s) == {"a", "c"}
    assert s["a"] == {"mean": 2.0, "std": 1.0, "median": 2.0, "n": 2}
    assert s["c"]["n"] == 0 and math.isnan(s["c"]["mean"])
    assert summarise([]) == {}
