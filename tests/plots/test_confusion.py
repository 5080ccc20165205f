"""medbundle.plots.confusion: the confusion-matrix figure."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.report import _assert_png

from medbundle.plots import plot_confusion_matrix


def test_confusion_matrix_plot_with_empty_row(tmp_path):
    plot_confusion_matrix([[3, 1, 0], [0, 0, 0], [1, 0, 5]], ["a", "b", "c"], tmp_path / "cm.png")
    plot_confusion_matrix(np.array([[3, 1], [2, 4]]), ["a", "b"], tmp_path / "cm_counts.png", normalize=False)
    _assert_png(tmp_path / "cm.png")
    _assert_png(tmp_path / "cm_counts.png")
    with pytest.raises(ValueError):
        plot_confusion_matrix([[1, 2], [3, 4]], ["a", "b", "c"], tmp_path / "bad.png")
