"""medbundle.calibration: calibration.json fitted on validation, checked against its model, applied to new data."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from scipy.special import softmax

from medbundle.calibration import (
    apply_calibration,
    calibrated_views,
    calibration_columns,
    file_sha256,
    fit_calibration,
    load_calibration,
    resolve_positive_class,
    save_calibration,
)


def _outputs(n, seed, c=2, t_true=3.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * 1.5
    y = np.array([rng.choice(c, p=row) for row in softmax(z, axis=1)])
    return y, softmax(z * t_true, axis=1)


def test_resolve_positive_class():
    assert resolve_positive_class(None, ["normal", "pneumonia"]) == 1
    assert resolve_positive_class(None, ["a", "b", "c"]) is None
    assert resolve_positive_class("a", ["a", "b", "c"]) == 0
    assert resolve_positive_class(2, ["a", "b", "c"]) == 2
    for bad in ("d", 3, True):
        with pytest.raises(ValueError, match="positive_class"):
            resolve_positive_class(bad, ["a", "b", "c"])


def test_fit_save_load_apply(tmp_path):
    y, p = _outputs(600, 0)
    names = ["normal", "pneumonia"]
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights v1")
    rec = fit_calibration(y, p, names, threshold_rule="sensitivity:0.9", alpha=0.1)
    assert rec["temperature"] == pytest.approx(3.0, rel=0.2)
    assert rec["threshold"]["positive_class"] == "pneumonia" and rec["threshold"]["rule"] == "sensitivity:0.9"
    assert rec["threshold"]["val_sensitivity"] >= 0.9
    assert rec["fitted_on"] == {"split": "val", "n": 600, "class_counts": {"normal": int((y == 0).sum()),
                                                                         "pneumonia": int((y == 1).sum())}}
    assert rec["val_after"]["nll"] < rec["val_before"]["nll"]
    path = tmp_path / "calibration.json"
    save_calibration(path, rec, model)
    saved = json.loads(path.read_text())
    assert saved["model_sha256"] == file_sha256(model) and saved["conformal"]["alpha"] == 0.1
    assert sorted(f.name for f in tmp_path.iterdir()) == ["calibration.json", "model.pt"]  # no temporary file

    loaded = load_calibration(path, model, names)
    assert loaded == saved
    yt, pt = _outputs(2000, 1)
    applied = apply_calibration(pt, loaded)
    np.testing.assert_array_equal(applied["probs"].argmax(1), pt.argmax(1))
    assert applied["positive_class"] == 1
    assert np.mean(applied["decision"][yt == 1]) == pytest.approx(0.9, abs=0.05)  # the threshold carries over
    covered = applied["sets"][np.arange(len(yt)), yt]
    assert covered.mean() == pytest.approx(0.9, abs=0.03)
    np.testing.assert_array_equal(applied["refer"], applied["sets"].sum(1) != 1)

    cols = calibration_columns(applied, names, entropy=np.zeros(len(yt)))
    assert list(cols) == ["cal_prob_normal", "cal_prob_pneumonia", "decision", "prediction_set", "set_size", "refer",
                          "entropy"]
    assert set(cols["decision"]) <= {"pneumonia", "not pneumonia"}
    assert set(cols["prediction_set"]) <= {"", "normal", "pneumonia", "normal|pneumonia"}


def test_load_refuses_another_model_or_other_classes(tmp_path, caplog):
    y, p = _outputs(100, 2, c=3)
    names = ["a", "b", "c"]
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights v1")
    path = tmp_path / "calibration.json"
    save_calibration(path, fit_calibration(y, p, names), model)
    assert load_calibration(path, model, names)["threshold"] is None  # 3 classes: no binary decision
    assert load_calibration(tmp_path / "missing.json", model) is None
    assert load_calibration(None) is None
    with caplog.at_level(logging.WARNING, logger="medbundle.calibration"):
        assert load_calibration(path, model, ["a", "b", "x"]) is None
        model.write_bytes(b"weights v2, retrained")
        assert load_calibration(path, model, names) is None
        path.write_text("{not json")
        assert load_calibration(path) is None
    text = caplog.text
    assert "another model" in text and "classes" in text and "not a calibration record" in text


def test_a_record_applies_only_to_outputs_of_as_many_test_time_views(tmp_path, caplog):
    y, p = _outputs(100, 3)
    model, path = tmp_path / "model.pt", tmp_path / "calibration.json"
    model.write_bytes(b"weights")
    save_calibration(path, fit_calibration(y, p, ["a", "b"]), model)  # a record without the field: single passes
    assert calibrated_views(path, model) == 1 and load_calibration(path, model, views=1) is not None
    save_calibration(path, dict(fit_calibration(y, p, ["a", "b"]), test_time_views=5), model)
    assert calibrated_views(path, model) == 5 and load_calibration(path, model, views=5) is not None
    with caplog.at_level(logging.WARNING, logger="medbundle.calibration"):
        assert load_calibration(path, model, views=1) is None
    assert "mean of 5 test-time view(s) and these predictions average 1: pass --tta_views 5" in caplog.text
    assert calibrated_views(tmp_path / "missing.json", model) == 1
    model.write_bytes(b"retrained")
    assert calibrated_views(path, model) == 1  # a record of another model says nothing about this one


def test_fit_with_one_class_falls_back_to_fixed_threshold(caplog):
    y = np.ones(30, int)
    p = np.tile([0.3, 0.7], (30, 1))
    with caplog.at_level(logging.WARNING, logger="medbundle.calibration"):
        rec = fit_calibration(y, p, ["neg", "pos"])
    assert rec["threshold"]["rule"] == "fixed:0.5" and "only one" in caplog.text
    with pytest.raises(ValueError, match="threshold_rule"):
        fit_calibration(y, p, ["neg", "pos"], threshold_rule="best")


@pytest.mark.parametrize("views", [0, 11, "three", None])
def test_a_record_with_a_bad_view_count_is_not_a_record(tmp_path, caplog, views):
    y, p = _outputs(60, 4)
    model, path = tmp_path / "model.pt", tmp_path / "calibration.json"
    model.write_bytes(b"weights")
    save_calibration(path, dict(fit_calibration(y, p, ["a", "b"]), test_time_views=views), model)
    with caplog.at_level(logging.WARNING, logger="medbundle.calibration"):
        assert load_calibration(path, model) is None and calibrated_views(path, model) == 1
    assert "not a calibration record" in caplog.text and "run evaluate.json again" in caplog.text


def test_a_file_is_hashed_once_while_it_is_the_same_file(tmp_path, monkeypatch):
    import builtins
    import hashlib

    from medbundle.calibration import file_sha256
    from medbundle.utils import atomic_write

    model = tmp_path / "model.pt"
    model.write_bytes(b"weights 1")
    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (opened.append(str(f)), real_open(f, *a, **k))[1])
    assert file_sha256(model) == file_sha256(str(model)) == hashlib.sha256(b"weights 1").hexdigest()
    assert opened.count(str(model)) == 1
    with atomic_write(model, "wb") as f:  # replaced (a new inode), even with the same size
        f.write(b"weights 2")
    assert file_sha256(model) == hashlib.sha256(b"weights 2").hexdigest()
