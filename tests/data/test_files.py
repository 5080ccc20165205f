"""medbundle.data.files: unreadable images reported together."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.data import make_class_tree, truncate
from PIL import Image

from medbundle.data.datalists import load_datalists
from medbundle.data.errors import DataError


@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_truncated_images_reported_together(tmp_path, kind):
    make_class_tree(tmp_path, {"NORMAL": 6, "HEMORRHAGE": 6})
    bad = []
    for name in ("NORMAL/bad1", "HEMORRHAGE/bad2"):
        path = tmp_path / f"{name}.{kind}"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
        bad.append(truncate(path))
    with pytest.raises(DataError) as info:
        load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"])
    message = str(info.value)
    assert all(str(p) in message for p in bad) and "2 of 14 image files cannot be read" in message
    assert "Remove or replace" in message
    assert len(load_datalists(tmp_path, ["NORMAL", "HEMORRHAGE"], check=False)["train"]) > 0
