"""medbundle.plots.roc: ROC curves."""

from __future__ import annotations

from helpers.report import _assert_png, _binary_case, _multiclass_case

from medbundle.plots import plot_roc
from medbundle.plots import roc as roc_plots


def test_roc_binary_draws_a_single_curve(tmp_path, monkeypatch):
    seen = []
    original = roc_plots.save_png

    def spy(fig, path, dpi=100):
        seen.append([t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()])
        original(fig, path, dpi=dpi)

    monkeypatch.setattr(roc_plots, "save_png", spy)
    y, probs = _binary_case()
    plot_roc(y, probs, ["neg", "pos"], tmp_path / "roc2.png")
    assert [t for t in seen[-1] if "chance" not in t] == [f"pos vs neg (AUC = {20 / 24:.3f})"]
    y4, probs4 = _multiclass_case()
    plot_roc(y4, probs4, list("abcd"), tmp_path / "roc4.png")
    assert len([t for t in seen[-1] if "chance" not in t]) == 4
    _assert_png(tmp_path / "roc2.png")
