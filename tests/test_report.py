"""medbundle.report: the classification report files and the predictions CSV."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from helpers.report import LOG_WITH_RESUME, _assert_png, _binary_case, _multiclass_case, _write_log

from medbundle.metrics import expected_calibration_error
from medbundle.report import write_classification_report, write_predictions_csv


def _strict_json(path: Path) -> dict:
    """Load JSON refusing NaN / Infinity (which are not valid JSON)."""

    def bad(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=bad)


def test_write_classification_report_files(tmp_path, caplog):
    y, probs = _multiclass_case()
    names = ["normal", "pneumonia (bacterial)", "pneumonia viral", "COVID-19"]
    ids = [f"case_{i:03d}.png" for i in range(len(y))]
    log = _write_log(tmp_path / "log.csv", LOG_WITH_RESUME)
    out = tmp_path / "report"
    with caplog.at_level(logging.INFO, logger="medbundle.report"):
        m = write_classification_report(out, y, probs, names, ids=ids, log_csv=log)

    expected = {
        "metrics.json",
        "classification_report.txt",
        "confusion_matrix.png",
        "roc.png",
        "reliability.png",
        "predictions.csv",
        "training_curves.png",
    }
    assert {p.name for p in out.iterdir()} == expected  # nothing else (no temp files)
    assert set(m["files"]) == expected
    for png in expected:
        if png.endswith(".png"):
            _assert_png(out / png)

    saved = _strict_json(out / "metrics.json")
    assert saved == m
    assert saved["ece"] == pytest.approx(expected_calibration_error(y, probs))
    assert 0 <= saved["mce"] <= 1 and saved["ece"] <= saved["mce"]
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "auc_macro_ovr", "per_class",
                "macro_avg", "weighted_avg", "confusion_matrix", "n", "cohen_kappa"):
        assert key in saved

    text = (out / "classification_report.txt").read_text()
    for needle in ["pneumonia (bacterial)", "macro avg", "balanced accuracy", "macro F1", "AUC", "confusion matrix"]:
        assert needle in text

    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0].keys()) == ["id", "label", "label_name", "pred", "pred_name", "confidence"] + [
        f"prob_{n}" for n in names
    ]
    assert len(rows) == len(y)
    assert [r["id"] for r in rows] == ids
    for r, yi, pi in zip(rows, y, probs):
        assert int(r["label"]) == yi and r["label_name"] == names[yi]
        assert int(r["pred"]) == pi.argmax() and r["pred_name"] == names[pi.argmax()]
        assert float(r["confidence"]) == pytest.approx(pi.max(), rel=1e-5)
        assert sum(float(r[f"prob_{n}"]) for n in names) == pytest.approx(1.0, abs=1e-4)

    assert any("accuracy=" in r.getMessage() and str(out) in r.getMessage() for r in caplog.records)


def test_report_binary_without_log_and_with_absent_class(tmp_path):
    y, probs = _binary_case()
    m = write_classification_report(tmp_path / "bin", y, probs, ["neg", "pos"], log_csv=tmp_path / "missing.csv")
    assert not (tmp_path / "bin" / "training_curves.png").exists()
    assert "training_curves.png" not in m["files"]
    assert m["auc_macro_ovr"] == pytest.approx(20 / 24)

    y3 = np.array([0, 0, 1, 1, 0, 1])
    probs3 = np.array(
        [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.1, 0.2, 0.7], [0.4, 0.5, 0.1]]
    )
    m3 = write_classification_report(tmp_path / "absent", y3, probs3, ["a", "b", "c"])
    saved = _strict_json(tmp_path / "absent" / "metrics.json")
    assert saved["per_class"]["c"]["auc"] is None and m3["per_class"]["c"]["auc"] is None
    _assert_png(tmp_path / "absent" / "roc.png")
    # class c has no test image and is predicted once: the headline macro F1 is over a and b (as balanced accuracy
    # and AUC), sklearn's classification_report average (macro_avg) counts c with F1 0
    from sklearn.metrics import f1_score

    pred = probs3.argmax(axis=1)
    assert m3["macro_f1"] == pytest.approx(f1_score(y3, pred, labels=[0, 1], average="macro"))
    assert m3["macro_avg"]["f1"] == pytest.approx(f1_score(y3, pred, labels=[0, 1, 2], average="macro", zero_division=0))
    assert m3["macro_f1"] > m3["macro_avg"]["f1"]
    assert "(over the 2 of 3 classes with test images)" in (tmp_path / "absent" / "classification_report.txt").read_text()


def test_predictions_csv_without_labels(tmp_path):
    _, probs = _binary_case()
    write_predictions_csv(tmp_path / "p.csv", None, probs, ["neg", "pos"])
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0].keys()) == ["id", "pred", "pred_name", "confidence", "prob_neg", "prob_pos"]
    assert [r["id"] for r in rows] == [str(i) for i in range(len(probs))]
    with pytest.raises(ValueError):
        write_predictions_csv(tmp_path / "q.csv", ["only-one"], probs, ["neg", "pos"])
    assert not (tmp_path / "q.csv").exists()
