"""medbundle.compare: ``--input_path`` given a folder of class folders (read as training reads them)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from medbundle.data import CT_CLASSES, read_mat


@pytest.mark.slow
def test_compare_on_class_folders(trained, ct_demo_dir, tmp_path, capsys):
    """The documented ``python -m medbundle.compare <run> --input_path <class folders>`` works, on every image."""
    from medbundle.compare import main

    images, labels = read_mat(ct_demo_dir / "Test.mat")
    folder = tmp_path / "demo"
    for i in range(12):
        (folder / CT_CLASSES[int(labels[i])]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(images[i], 0, 255).astype(np.uint8)).save(folder / CT_CLASSES[int(labels[i])] / f"{i}.png")
    present = {int(labels[i]) for i in range(12)}
    assert main([str(trained), "--input_path", str(folder), "--output_dir", str(tmp_path / "out"), "--device", "cpu"]) == 0
    with open(tmp_path / "out" / "comparison.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and int(rows[0]["test_images"]) == 12 and len(present) >= 2
    assert "12 images" in capsys.readouterr().out


def test_compare_input_path_errors_are_one_line(tmp_path, capsys):
    """A run folder that is not one, before any model is built: one line, exit code 2."""
    from medbundle.compare import main

    assert main([str(tmp_path / "missing_run"), "--input_path", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing_run" in err and "\n" not in err
