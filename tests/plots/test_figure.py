"""medbundle.plots.figure: atomic PNG writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.report import _binary_case

from medbundle.plots import plot_confusion_matrix, plot_roc
from medbundle.report import write_classification_report


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


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
