"""ShortcutCheck: the evaluator's images kept with their anatomy masks, the model scored with the anatomy blanked and
with everything else blanked, shortcuts.json written and a model that reads outside the anatomy flagged."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.engines import SupervisedEvaluator
from monai.inferers import SimpleInferer
from monai.transforms import Activationsd, Compose
from torch import nn

from medbundle.data.errors import DataError
from medbundle.errors import OptionError
from medbundle.handlers import ShortcutCheck

NAMES = ["NORMAL", "PNEUMONIA"]
SIZE = 16
LUNG = np.zeros((SIZE, SIZE), bool)
LUNG[4:14, 2:14] = True


class _Corners(nn.Module):
    """Logits = 10 x the brightness of the top-left (NORMAL) and top-right (PNEUMONIA) corners, outside the lungs;
    ``inside=True``: the lungs' brightness instead (PNEUMONIA when above 0.4). Records its mode at each call."""

    def __init__(self, inside: bool = False):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.inside, self.modes = inside, []

    def forward(self, x):
        self.modes.append(self.training)
        if self.inside:
            s = x[:, 0][:, torch.as_tensor(LUNG)].mean(1) - 0.4
            return self.scale * torch.stack([-s, s], 1)
        return self.scale * torch.stack([x[:, 0, :3, :3].mean((1, 2)), x[:, 0, :3, -3:].mean((1, 2))], 1)


def _items(n: int = 24) -> list[dict]:
    """Films with bright lungs for PNEUMONIA and a marker in the class's corner, alternating classes, with their
    lung masks (0/255, ``(1, H, W)``, as LoadImage2Dd loads a PNG mask)."""
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        y = i % 2
        img = np.full((SIZE, SIZE), 0.45) + rng.normal(0, 0.02, (SIZE, SIZE))
        img[LUNG] = 0.6 if y else 0.2
        (img[:3, -3:] if y else img[:3, :3])[:] = 1.0
        item = {"image": torch.as_tensor(img, dtype=torch.float32)[None], "label": torch.eye(2)[y], "id": f"f{i}"}
        item["lung_mask"] = torch.as_tensor(LUNG * 255.0, dtype=torch.float32)[None]
        items.append(item)
    return items


def _evaluate(tmp_path, net, items, **kwargs) -> ShortcutCheck:
    check = ShortcutCheck(str(tmp_path), NAMES, batch_size=5, **kwargs)
    inferer = _CountingInferer()
    loader = torch.utils.data.DataLoader(items, batch_size=4, shuffle=False)  # collated: one key set per batch
    SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=loader, network=net, inferer=inferer,
                        postprocessing=Compose([Activationsd(keys="pred", softmax=True)]), val_handlers=[check]).run()
    check.inferer_calls = inferer.calls
    return check


class _CountingInferer(SimpleInferer):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __call__(self, inputs, network, *args, **kwargs):
        self.calls += 1
        return super().__call__(inputs, network, *args, **kwargs)


def test_a_model_reading_outside_the_lungs_is_flagged_and_the_file_written(tmp_path, caplog):
    net = _Corners()
    with caplog.at_level(logging.INFO, logger="medbundle.handlers"):
        check = _evaluate(tmp_path, net, _items())
    on_disk = json.loads((tmp_path / "shortcuts.json").read_text())
    assert on_disk == json.loads(json.dumps(check.result)) and on_disk["flag"] is True
    assert on_disk["n"] == 24 and on_disk["n_skipped_no_mask"] == 0 and on_disk["mask_key"] == "lung_mask"
    assert on_disk["original"]["accuracy"]["value"] == 1.0 and on_disk["outside_only"]["accuracy"]["value"] == 1.0
    assert on_disk["inside_only"]["accuracy"]["value"] == 0.5
    assert on_disk["chance"]["majority_class"] == "NORMAL" and on_disk["anatomy_fraction"] == pytest.approx(LUNG.mean())
    assert check.inferer_calls == 6 + 3 * 5  # the evaluator's 6 batches, then 3 variants x 5 batches of 5
    lines = [r for r in caplog.records if r.name == "medbundle.handlers"]
    assert [r.levelname for r in lines] == ["INFO"] * 3 + ["WARNING"]
    assert "outside_only (the anatomy removed): accuracy 1.000" in lines[2].getMessage()
    assert "lung_mask region blanked" in lines[3].getMessage()


def test_a_model_reading_the_lungs_is_not_flagged_and_items_without_a_mask_are_counted(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="medbundle.handlers"):
        unmasked = [{k: v for k, v in item.items() if k != "lung_mask"} for item in _items(5)]
        check = _evaluate(tmp_path, _Corners(inside=True), _items(12) + unmasked)
    result = json.loads((tmp_path / "shortcuts.json").read_text())
    assert result["flag"] is False and check.result["flag"] is False
    assert result["n"] == 12 and result["n_skipped_no_mask"] == 5
    assert result["inside_only"]["accuracy"]["value"] == 1.0 and result["outside_only"]["accuracy"]["value"] <= 0.5
    assert not any(r.levelname == "WARNING" for r in caplog.records if r.name == "medbundle.handlers")
    ours = [r.getMessage() for r in caplog.records if r.name == "medbundle.handlers"]
    assert ours and all("(5 images without lung_mask or label skipped)" in m for m in ours)


def test_on_a_plain_engine_the_network_runs_in_eval_mode_and_its_mode_is_restored(tmp_path):
    net = nn.Sequential(nn.BatchNorm2d(1), _Corners()).train()
    items = _items(10)
    check = ShortcutCheck(str(tmp_path / "out"), NAMES, network=net, mask_key="anatomy", label_key="y",
                          fill=0.0, batch_size=4)
    for item in items:
        item["anatomy"], item["y"] = item.pop("lung_mask")[0] > 0, item.pop("label").argmax()
    engine = Engine(lambda e, batch: None)
    check.attach(engine)
    engine.run([items[:6], items[6:]])  # decollated batches (lists of dicts)
    assert net.training and net[1].modes == [False] * 9  # 3 variants x 3 batches
    result = json.loads((tmp_path / "out" / "shortcuts.json").read_text())
    assert result["n"] == 10 and result["fill"] == 0.0 and result["mask_key"] == "anatomy"


def test_no_mask_anywhere_writes_nothing_and_says_so(tmp_path, caplog):
    """A bundle whose data has no anatomy masks (head CT, MRI) runs the same evaluate.json: no check, no file."""
    items = [{k: v for k, v in item.items() if k != "lung_mask"} for item in _items(4)]
    with caplog.at_level(logging.INFO, logger="medbundle.handlers"):
        check = _evaluate(tmp_path, _Corners(), items)
    assert not (tmp_path / "shortcuts.json").exists() and check.result["n"] == 0
    assert "shortcut check not run: no image had a lung_mask and a label (4 without lung_mask" in caplog.text


def test_a_mask_of_another_size_and_bad_options_are_refused(tmp_path):
    items = _items(2)
    items[1]["lung_mask"] = torch.zeros(1, 8, 8)
    check, engine = ShortcutCheck(str(tmp_path), NAMES, network=_Corners()), Engine(lambda e, batch: None)
    check.attach(engine)
    with pytest.raises(DataError, match=r"lung_mask of shape \(1, 8, 8\) does not fit its image of shape "
                                        r"\(1, 16, 16\): load and resize lung_mask like image \(nearest\)"):
        engine.run([items])
    with pytest.raises(OptionError, match=r"fill='black' is not a fill value: .* \(ShortcutCheck's fill\)"):
        ShortcutCheck(str(tmp_path), NAMES, fill="black")
    with pytest.raises(OptionError, match="batch_size=0"):
        ShortcutCheck(str(tmp_path), NAMES, batch_size=0)
