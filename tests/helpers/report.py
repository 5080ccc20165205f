"""Small prediction sets and file checks shared by the metrics, plots and report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


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


def _write_log(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


LOG_WITH_RESUME = """epoch,train_loss,lr,val_accuracy,val_auc
1,1.20,0.001,0.50,0.60
2,0.90,0.0009,,0.70
3,0.70,0.0008,0.65,
2,0.85,0.0009,0.60,0.72
3,0.60,0.0008,0.70,0.80
4,0.50,0.0005,,
5,0.40,0.0001,0.80,0.90
6,0.3"""  # last line cut by a kill
