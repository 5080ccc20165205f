"""Tests of medbundle.report: metrics against hand-computed values, calibration, files and atomicity."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medbundle import report
from medbundle.report import (
    classification_metrics,
    expected_calibration_error,
    plot_confusion_matrix,
    plot_reliability_diagram,
    plot_roc,
    plot_training_curves,
    read_training_log,
    write_classification_report,
    write_predictions_csv,
)

# ------------------------------------------------------------------------------------------------
# fixtures / helpers
# ------------------------------------------------------------------------------------------------


def _binary_case() -> tuple[np.ndarray, np.ndarray]:
    """4 positives, 6 negatives; threshold 0.5 gives TP=3 FN=1 FP=2 TN=4; AUC = 20/24."""
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p1 = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.55, 0.4, 0.2, 0.1, 0.45])
    return y, np.stack([1 - p1, p1], axis=1)


def _multiclass_case(n: int = 120, c: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += 1.5
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def _strict_json(path: Path) -> dict:
    """Load JSON refusing NaN / Infinity (which are not valid JSON)."""

    def bad(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=bad)


def _assert_png(path: Path, min_bytes: int = 5000) -> None:
    assert path.is_file(), path
    assert path.stat().st_size > min_bytes, f"{path} is only {path.stat().st_size} bytes"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] > 200 and im.size[1] > 200
        # not a blank canvas
        arr = np.asarray(im.convert("L"))
        assert arr.std() > 5


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def _write_log(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------------
# classification_metrics
# ------------------------------------------------------------------------------------------------


def test_perfect_predictions():
    y = np.array([0, 1, 2, 0, 1, 2])
    probs = np.eye(3)[y] * 0.9 + 0.1 / 3
    m = classification_metrics(y, probs, ["a", "b", "c"])
    assert m["accuracy"] == 1.0
    assert m["balanced_accuracy"] == 1.0
    assert m["macro_f1"] == 1.0 and m["weighted_f1"] == 1.0
    assert m["auc_macro_ovr"] == 1.0
    assert m["cohen_kappa"] == pytest.approx(1.0)
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert m["n"] == 6 and m["n_classes"] == 3 and m["class_names"] == ["a", "b", "c"]
    for name in "abc":
        pc = m["per_class"][name]
        assert pc["auc"] == 1.0
        for key in ("precision", "recall", "f1", "sensitivity", "specificity", "ppv", "npv"):
            assert pc[key] == 1.0, key
        assert pc["support"] == 2


def test_binary_hand_computed():
    y, probs = _binary_case()
    m = classification_metrics(y, probs, ["neg", "pos"])
    pos, neg = m["per_class"]["pos"], m["per_class"]["neg"]
    assert m["confusion_matrix"] == [[4, 2], [1, 3]]
    assert m["accuracy"] == pytest.approx(0.7)
    assert pos["sensitivity"] == pytest.approx(3 / 4)
    assert pos["specificity"] == pytest.approx(4 / 6)
    assert pos["ppv"] == pytest.approx(3 / 5)
    assert pos["npv"] == pytest.approx(4 / 5)
    assert pos["precision"] == pytest.approx(3 / 5) and pos["recall"] == pytest.approx(3 / 4)
    assert pos["f1"] == pytest.approx(2 / 3)
    # the negative class is the mirror image
    assert neg["sensitivity"] == pytest.approx(4 / 6) and neg["specificity"] == pytest.approx(3 / 4)
    assert neg["ppv"] == pytest.approx(4 / 5) and neg["npv"] == pytest.approx(3 / 5)
    assert neg["f1"] == pytest.approx(8 / 11)
    # 20 of the 24 (positive, negative) pairs are ranked correctly
    assert m["auc_macro_ovr"] == pytest.approx(20 / 24)
    assert pos["auc"] == pytest.approx(20 / 24) and neg["auc"] == pytest.approx(20 / 24)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 8 / 11) / 2)
    assert m["weighted_f1"] == pytest.approx((4 * 2 / 3 + 6 * 8 / 11) / 10)
    # p_o = 0.7, p_e = 0.5*0.4 + 0.5*0.6 = 0.5 -> kappa 0.4
    assert m["cohen_kappa"] == pytest.approx(0.4)
    assert m["macro_avg"]["support"] == 10 and m["weighted_avg"]["f1"] == pytest.approx(m["weighted_f1"])


def test_multiclass_matches_sklearn():
    from sklearn.metrics import classification_report, roc_auc_score

    y, probs = _multiclass_case()
    names = ["w", "x", "y", "z"]
    m = classification_metrics(y, probs, names)
    assert m["auc_macro_ovr"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    ref = classification_report(y, probs.argmax(1), target_names=names, output_dict=True, zero_division=0)
    for name in names:
        for key, ref_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert m["per_class"][name][key] == pytest.approx(ref[name][ref_key])
    for ours, theirs in (("macro_avg", "macro avg"), ("weighted_avg", "weighted avg")):
        assert m[ours]["f1"] == pytest.approx(ref[theirs]["f1-score"])
        assert m[ours]["precision"] == pytest.approx(ref[theirs]["precision"])
    json.dumps(m, allow_nan=False)  # JSON-ready


def test_absent_class_gives_null_auc():
    # class "c" never occurs in y_true (but is predicted once)
    y = np.array([0, 0, 1, 1, 0, 1])
    probs = np.array(
        [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.1, 0.2, 0.7], [0.4, 0.5, 0.1]]
    )
    m = classification_metrics(y, probs, ["a", "b", "c"])
    text = json.dumps(m, allow_nan=False)
    assert '"auc": null' in text
    c = m["per_class"]["c"]
    assert c["auc"] is None and c["sensitivity"] is None and c["support"] == 0
    assert c["ppv"] == 0.0 and c["specificity"] == pytest.approx(5 / 6)
    assert m["confusion_matrix"][2] == [0, 0, 0]
    # macro OvR AUC over the present classes a and b
    assert m["auc_macro_ovr"] == pytest.approx(np.mean([m["per_class"]["a"]["auc"], m["per_class"]["b"]["auc"]]))
    assert m["balanced_accuracy"] == pytest.approx(((2 / 3) + 1.0) / 2)


def test_single_class_present_does_not_crash():
    y = np.zeros(5, dtype=int)
    probs = np.tile([0.7, 0.2, 0.1], (5, 1))
    m = classification_metrics(y, probs, ["a", "b", "c"])
    json.dumps(m, allow_nan=False)
    assert m["accuracy"] == 1.0 and m["auc_macro_ovr"] is None
    assert m["per_class"]["a"]["specificity"] is None
    # 2 classes, only negatives: binary AUC undefined
    m2 = classification_metrics(np.zeros(3, dtype=int), np.tile([0.6, 0.4], (3, 1)), ["neg", "pos"])
    assert m2["auc_macro_ovr"] is None


@pytest.mark.parametrize(
    "y, probs, names",
    [
        (np.array([0, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]), ["a"]),  # wrong number of names
        (np.array([0, 1, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]), ["a", "b"]),  # length mismatch
        (np.array([0, 2]), np.array([[0.5, 0.5], [0.5, 0.5]]), ["a", "b"]),  # label out of range
        (np.array([0, 1]), np.array([[np.nan, 0.5], [0.5, 0.5]]), ["a", "b"]),  # NaN probability
        (np.array([0, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]), ["a", "a"]),  # duplicate names
        (np.array([0.5, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]), ["a", "b"]),  # non-integer label
    ],
)
def test_invalid_inputs_raise(y, probs, names):
    with pytest.raises(ValueError):
        classification_metrics(y, probs, names)


# ------------------------------------------------------------------------------------------------
# calibration
# ------------------------------------------------------------------------------------------------


def test_ece_perfectly_calibrated_is_zero():
    # 10 samples at confidence 0.8 with 8 correct, 10 samples at confidence 0.6 with 6 correct
    probs = np.array([[0.8, 0.2]] * 10 + [[0.4, 0.6]] * 10)
    y = np.array([0] * 8 + [1] * 2 + [1] * 6 + [0] * 4)
    assert expected_calibration_error(y, probs) == pytest.approx(0.0, abs=1e-12)


def test_ece_known_miscalibration(tmp_path):
    # 4 samples at confidence 0.95 with 2 correct (gap 0.45, overconfident)
    # 6 samples at confidence 0.65 all correct (gap 0.35, underconfident)
    probs = np.array([[0.95, 0.05]] * 4 + [[0.35, 0.65]] * 6)
    y = np.array([0, 0, 1, 1] + [1] * 6)
    ece = expected_calibration_error(y, probs, n_bins=10)
    assert ece == pytest.approx(0.4 * 0.45 + 0.6 * 0.35)
    # all-overconfident: confidence 0.9, accuracy 0.5 -> ECE = MCE = 0.4
    probs2 = np.array([[0.9, 0.1]] * 10)
    y2 = np.array([0] * 5 + [1] * 5)
    assert expected_calibration_error(y2, probs2) == pytest.approx(0.4)
    out = plot_reliability_diagram(y, probs, tmp_path / "rel.png", n_bins=10)
    assert out["ece"] == pytest.approx(0.39) and out["mce"] == pytest.approx(0.45)
    _assert_png(tmp_path / "rel.png")
    # a single bin is just |accuracy - mean confidence|
    assert expected_calibration_error(y, probs, n_bins=1) == pytest.approx(abs(0.8 - (0.4 * 0.95 + 0.6 * 0.65)))


# ------------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------------

LOG_WITH_RESUME = """epoch,train_loss,lr,val_accuracy,val_auc
1,1.20,0.001,0.50,0.60
2,0.90,0.0009,,0.70
3,0.70,0.0008,0.65,
2,0.85,0.0009,0.60,0.72
3,0.60,0.0008,0.70,0.80
4,0.50,0.0005,,
5,0.40,0.0001,0.80,0.90
6,0.3"""  # last line cut by a kill


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


def test_roc_binary_draws_a_single_curve(tmp_path, monkeypatch):
    seen = []
    original = report.save_png

    def spy(fig, path, dpi=100):
        seen.append([t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()])
        original(fig, path, dpi=dpi)

    monkeypatch.setattr(report, "save_png", spy)
    y, probs = _binary_case()
    plot_roc(y, probs, ["neg", "pos"], tmp_path / "roc2.png")
    assert [t for t in seen[-1] if "chance" not in t] == [f"pos vs neg (AUC = {20 / 24:.3f})"]
    y4, probs4 = _multiclass_case()
    plot_roc(y4, probs4, list("abcd"), tmp_path / "roc4.png")
    assert len([t for t in seen[-1] if "chance" not in t]) == 4
    _assert_png(tmp_path / "roc2.png")


def test_confusion_matrix_plot_with_empty_row(tmp_path):
    plot_confusion_matrix([[3, 1, 0], [0, 0, 0], [1, 0, 5]], ["a", "b", "c"], tmp_path / "cm.png")
    plot_confusion_matrix(np.array([[3, 1], [2, 4]]), ["a", "b"], tmp_path / "cm_counts.png", normalize=False)
    _assert_png(tmp_path / "cm.png")
    _assert_png(tmp_path / "cm_counts.png")
    with pytest.raises(ValueError):
        plot_confusion_matrix([[1, 2], [3, 4]], ["a", "b", "c"], tmp_path / "bad.png")


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


# ------------------------------------------------------------------------------------------------
# training curves
# ------------------------------------------------------------------------------------------------


def test_training_log_keeps_last_row_per_epoch(tmp_path):
    log = _write_log(tmp_path / "log.csv", LOG_WITH_RESUME)
    df = read_training_log(log)
    assert df["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    assert df["train_loss"].tolist()[:5] == [1.20, 0.85, 0.60, 0.50, 0.40]
    assert df.loc[df.epoch == 2, "val_accuracy"].item() == 0.60
    assert np.isnan(df.loc[df.epoch == 4, "val_auc"].item())
    assert np.isnan(df.loc[df.epoch == 6, "lr"].item())  # cut line: missing values, not a crash
    assert plot_training_curves(log, tmp_path / "curves.png") is True
    _assert_png(tmp_path / "curves.png")


def test_training_curves_only_some_columns(tmp_path):
    log = _write_log(tmp_path / "log.csv", "epoch,train_loss\n1,1.0\n2,0.5\n")
    assert plot_training_curves(log, tmp_path / "curves.png") is True
    _assert_png(tmp_path / "curves.png")


@pytest.mark.parametrize("content", [None, "", "epoch,train_loss,lr,val_accuracy\n"])
def test_training_curves_missing_or_empty_log(tmp_path, content):
    log = tmp_path / "log.csv"
    if content is not None:
        log.write_text(content)
    assert plot_training_curves(log, tmp_path / "curves.png") is False
    assert not (tmp_path / "curves.png").exists()
    assert plot_training_curves(None, tmp_path / "curves.png") is False
    assert {p.name for p in tmp_path.iterdir()} == ({"log.csv"} if content is not None else set())


# ------------------------------------------------------------------------------------------------
# atomic writes
# ------------------------------------------------------------------------------------------------


def test_failed_savefig_leaves_no_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def broken_savefig(self, fname, *args, **kwargs):
        fname.write(b"\x89PNG\r\n\x1a\n partial")
        fname.flush()
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    y, probs = _binary_case()

    with pytest.raises(RuntimeError, match="disk on fire"):
        plot_roc(y, probs, ["neg", "pos"], tmp_path / "roc.png")
    assert not (tmp_path / "roc.png").exists()
    assert list(tmp_path.iterdir()) == []

    # an existing file survives a failed rewrite untouched
    previous = tmp_path / "cm.png"
    previous.write_bytes(b"previous content")
    with pytest.raises(RuntimeError):
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], previous)
    assert previous.read_bytes() == b"previous content"
    assert _no_temp_files(tmp_path)

    # the report stops at the first failure and leaves no metrics.json (the completion marker)
    with pytest.raises(RuntimeError):
        write_classification_report(tmp_path / "rep", y, probs, ["neg", "pos"])
    assert not (tmp_path / "rep" / "metrics.json").exists()
    assert _no_temp_files(tmp_path / "rep") and list((tmp_path / "rep").iterdir()) == []
