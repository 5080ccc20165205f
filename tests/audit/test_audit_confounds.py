"""medbundle.audit.confounds: a class told by image size alone is flagged; classes alike in size, mode and format
are not; quick_confounds says so from headers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from audit_images import picture, resized, save

from medbundle.audit import confound_checks, confound_table, quick_confounds
from medbundle.audit.hashing import hash_image


def _images(folder, sizes: dict[str, tuple[int, int]], n: int = 12) -> list[dict]:
    """``n`` pictures per class, each class at its own ``(width, height)``; rows as the pipeline makes them."""
    rows = []
    for k, (cls, (w, h)) in enumerate(sizes.items()):
        for i in range(n):
            path = save(folder / cls / f"{i}.png", resized(picture(100 * k + i), w, h))
            rows.append({"path": str(path), "source": "s", "class": cls, **hash_image(path)["info"]})
    return rows


def test_a_size_confound_is_flagged(tmp_path):
    images = pd.DataFrame(_images(tmp_path, {"NORMAL": (200, 240), "HEMORRHAGE": (320, 300)}))
    checks = confound_checks(images).set_index("features")
    meta = checks.loc["metadata"]
    assert meta["predicts"] == "class" and meta["source"] == "s"
    assert meta["balanced_accuracy"] == 1.0 and meta["chance"] == 0.5 and meta["flagged"]
    assert meta["most_telling"] in ("width", "height", "aspect")
    table = confound_table(images).set_index("class")
    assert table.loc["NORMAL", "width_median"] == 200 and table.loc["HEMORRHAGE", "height_max"] == 300
    assert table.loc["NORMAL", "mode"] == "L 12" and table.loc["NORMAL", "images"] == 12


def test_classes_alike_are_not_flagged(tmp_path):
    images = pd.DataFrame(_images(tmp_path, {"A": (200, 240), "B": (200, 240)}))
    checks = confound_checks(images).set_index("features")
    assert not checks.loc["metadata", "flagged"]
    assert checks.loc["metadata", "balanced_accuracy"] == pytest.approx(0.5, abs=0.1)
    assert not checks.loc["intensity", "flagged"]  # the same kind of pictures in both


def test_the_source_is_predicted_when_there_are_several():
    rng = np.random.default_rng(0)
    rows = [{"source": s, "class": c, "width": w, "height": 100, "aspect": w / 100, "bit_depth": 8, "channels": 1,
             "mode": "L", "format": f, **{k: rng.random() for k in ("mean", "std", "p01", "p05", "p50", "p95", "p99")}}
            for s, w, f in (("x", 100, "PNG"), ("y", 300, "JPEG")) for c in ("A", "B") for _ in range(10)]
    checks = confound_checks(pd.DataFrame(rows))
    source = checks[checks["predicts"] == "source"].set_index("features")
    assert source.loc["metadata", "flagged"] and source.loc["metadata", "source"] == "*"
    assert not source.loc["intensity", "flagged"]  # random statistics
    assert set(checks[checks["predicts"] == "class"]["source"]) == {"x", "y"}


def test_too_few_images_per_class_are_not_scored():
    rows = [{"source": "s", "class": c, "width": 1, "height": 1, "aspect": 1.0, "bit_depth": 8, "channels": 1,
             "mode": "L", "format": "PNG"} for c in ("A", "A", "B")]
    assert confound_checks(pd.DataFrame(rows), intensity=None).empty


def test_quick_confounds_reads_headers_only(tmp_path):
    items = [{"image": str(save(tmp_path / f"n{i}.png", resized(picture(i), 200, 240))), "label": 0} for i in range(10)]
    items += [{"image": str(save(tmp_path / f"h{i}.png", resized(picture(50 + i), 320, 300))), "label": 1}
              for i in range(10)]
    warnings = quick_confounds(items, ["NORMAL", "HEMORRHAGE"])
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "balanced accuracy 1.00, chance 0.50" in warnings[0]
    assert "NORMAL: 200x240 px median" in warnings[0] and "HEMORRHAGE: 320x300 px median" in warnings[0]
    assert "Resize every image" in warnings[0]
    same = [dict(it, label=i % 2) for i, it in enumerate(items[:10])]  # one size, labels alternating
    assert quick_confounds(same, ["NORMAL", "HEMORRHAGE"]) == []
    assert quick_confounds([{"image": "/d/Train.mat#3", "label": 0}], ["A"]) == []  # not a file: not checked
