"""medbundle.plots.training_curves: reading the training log and plotting it."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.report import LOG_WITH_RESUME, _assert_png, _write_log

from medbundle.plots import plot_training_curves, read_training_log


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
