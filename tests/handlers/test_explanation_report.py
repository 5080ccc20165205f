"""ExplanationReport on chest X-ray drawings with the lung fields as anatomy: spillover outside the lungs per method,
per image and per class, its chance level, and the attention statistics, through a real MONAI evaluator."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from helpers.explain import chest_xray_phantom
from monai.engines import SupervisedEvaluator
from monai.transforms import Activationsd, Compose
from torch import nn

from medbundle.data.errors import DataError
from medbundle.errors import OptionError
from medbundle.handlers import ExplanationReport
from medbundle.networks import CTNet

NAMES = ["NORMAL", "PNEUMONIA"]
SIZE = 64
IG = {"integrated_gradients": {"steps": 4}}


class _LooksAt(nn.Module):
    """Logit of PNEUMONIA = sum of the pixels of ``region`` (NORMAL = minus that): its evidence lies only there."""

    def __init__(self, region: np.ndarray):
        super().__init__()
        self.weight = nn.Parameter(torch.as_tensor(region, dtype=torch.float32)[None, None])

    def forward(self, x):
        s = (x * self.weight).sum(dim=(1, 2, 3)) / self.weight.sum()
        return torch.stack([-s, s], dim=1)


def _items(n: int = 6) -> tuple[list[dict], list[np.ndarray]]:
    items, lungs = [], []
    for i in range(n):
        img, lung = chest_xray_phantom(SIZE, seed=i, consolidation=bool(i % 2))
        label = torch.nn.functional.one_hot(torch.tensor(i % 2), 2).float()
        items.append({"image": torch.from_numpy(img)[None], "label": label, "id": f"film{i}.png"})
        lungs.append(lung)
    return items, lungs


def _run(tmp_path, net, methods, items=None, anatomy="lung", **kwargs) -> ExplanationReport:
    items = _items()[0] if items is None else items
    report = ExplanationReport(str(tmp_path), NAMES, methods=methods, anatomy=anatomy, sanity_images=0,
                               pictures_per_class=1, deletion_steps=4, **kwargs)
    loader = torch.utils.data.DataLoader(items, batch_size=4, shuffle=False)
    SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=loader, network=net.eval(),
                        postprocessing=Compose([Activationsd(keys="pred", softmax=True)]), val_handlers=[report]).run()
    return report


def test_spillover_outside_the_lungs_is_measured_per_method_image_and_class(tmp_path):
    _, lungs = _items()
    inside = np.logical_and.reduce(lungs)  # lung in every film
    belly = np.zeros((SIZE, SIZE), bool)
    belly[int(0.8 * SIZE) : int(0.95 * SIZE), int(0.35 * SIZE) : int(0.65 * SIZE)] = True  # body, not lung
    ig = {"integrated_gradients": {"steps": 4}}
    low = _run(tmp_path / "inside", _LooksAt(inside), ["integrated_gradients"], method_kwargs=ig).summary
    high = _run(tmp_path / "outside", _LooksAt(belly), ["integrated_gradients"], method_kwargs=ig).summary

    assert low["anatomy"]["kind"] == "lung" and low["anatomy"]["source"] == "computed"
    fraction = low["anatomy"]["mask_fraction"]
    assert fraction["n"] == 6 and 0.15 < fraction["mean"] < 0.45
    assert low["anatomy"]["uniform_map_spillover"] == pytest.approx(1 - fraction["mean"])
    spill_low = low["methods"]["integrated_gradients"]["per_image_summary"]["spillover"]
    spill_high = high["methods"]["integrated_gradients"]["per_image_summary"]["spillover"]
    assert spill_low["n"] == 6 and spill_low["mean"] < 0.05  # looks inside the lungs: nothing spills
    assert spill_high["mean"] > 0.95  # looks at the abdomen: everything spills (not so against the body)
    per_class = low["methods"]["integrated_gradients"]["spillover_per_class"]
    assert set(per_class) == set(NAMES) and per_class["NORMAL"]["n"] == 3

    rows = list(csv.DictReader((tmp_path / "outside" / "explanations.csv").open()))
    assert len(rows) == 6 and rows[0]["id"] == "film0.png" and rows[1]["label"] == "PNEUMONIA"
    assert all(float(r["integrated_gradients_spillover"]) > 0.95 for r in rows)
    assert all(0.15 < float(r["anatomy_fraction"]) < 0.45 for r in rows)
    on_disk = json.loads((tmp_path / "outside" / "summary.json").read_text())
    assert on_disk["anatomy"]["uniform_map_spillover"] == pytest.approx(high["anatomy"]["uniform_map_spillover"])


def test_gradcam_on_a_small_cnn_writes_attention_statistics_and_pictures(tmp_path):
    torch.manual_seed(0)
    net = CTNet(num_classes=2, features=(4, 8, 8, 16, 16), dense=16, pooled_size=1)
    summary = _run(tmp_path, net, ["gradcam", "occlusion"], restrict=True,
                   method_kwargs={"occlusion": {"mask_size": 16, "stride": 16}}).summary
    for name in ("gradcam", "occlusion"):
        stats = summary["methods"][name]
        spill = stats["per_image_summary"]["spillover"]
        assert 1 <= spill["n"] <= 6 and 0.0 <= spill["mean"] <= 1.0
        attention = stats["attention"]
        assert set(attention["per_class"]) == set(NAMES)
        for value in attention["per_class"].values():
            assert value["n"] == 3 and {"com_row", "com_col", "spread", "agreement"} <= set(value)
        (pair,) = attention["between_classes"]
        assert pair["classes"] == NAMES and -1.0 <= pair["correlation"] <= 1.0
        folder = tmp_path / "pictures" / name
        assert (folder / "mean_maps.png").stat().st_size > 0 and (folder / "grid.png").is_file()
        assert len(list(folder.glob("film*.png"))) >= 1
    json.dumps(summary)


@pytest.mark.parametrize("anatomy", ["lungs", "liver", 3])
def test_an_unknown_anatomy_is_refused_when_the_handler_is_built(tmp_path, anatomy):
    with pytest.raises(OptionError, match=r"anatomy=.* is not an anatomy: use one of brain, lung, chest, body"):
        ExplanationReport(str(tmp_path), NAMES, anatomy=anatomy)
    for none in (None, "", "none", "None"):
        assert ExplanationReport(str(tmp_path), NAMES, anatomy=none).anatomy is None
    assert ExplanationReport(str(tmp_path), NAMES, anatomy="chest").anatomy == "chest"


def _with_lung_masks(items: list[dict], masks: list[np.ndarray]) -> list[dict]:
    """``items`` with a ``lung_mask`` as the bundles load it: ``(1, H, W)``, 0/255."""
    return [item | {"lung_mask": torch.as_tensor(m * 255.0, dtype=torch.float32)[None]}
            for item, m in zip(items, masks)]


def test_lung_masks_of_the_data_are_the_anatomy_instead_of_computed_ones(tmp_path):
    items, lungs = _items()
    inside = np.logical_and.reduce(lungs)
    ig = {"integrated_gradients": {"steps": 4}}
    low = _run(tmp_path / "a", _LooksAt(inside), ["integrated_gradients"], _with_lung_masks(items, lungs),
               anatomy=None, method_kwargs=ig).summary
    assert low["anatomy"]["source"] == "data" and low["anatomy"]["n_from_data"] == 6
    assert low["anatomy"]["kind"] == "lung_mask" and low["anatomy"]["key"] == "lung_mask"
    assert low["anatomy"]["mask_fraction"]["mean"] == pytest.approx(np.mean([m.mean() for m in lungs]))
    assert low["methods"]["integrated_gradients"]["per_image_summary"]["spillover"]["mean"] < 0.05
    rows = list(csv.DictReader((tmp_path / "a" / "explanations.csv").open()))
    assert [float(r["anatomy_fraction"]) for r in rows] == pytest.approx([m.mean() for m in lungs])

    # a box stands for the lungs: the data's masks win over the computed lung fields, whatever the anatomy kind
    box = np.zeros((SIZE, SIZE), bool)
    box[8:24, 8:24] = True
    boxed = _run(tmp_path / "b", _LooksAt(inside), ["integrated_gradients"], _with_lung_masks(items, [box] * 6),
                 method_kwargs=ig).summary
    assert boxed["anatomy"]["source"] == "data" and boxed["anatomy"]["kind"] == "lung"
    assert boxed["anatomy"]["mask_fraction"]["mean"] == pytest.approx(box.mean())
    on_disk = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert on_disk["anatomy"]["source"] == "data" and on_disk["anatomy"]["n_from_data"] == 6


def test_batches_without_lung_masks_are_computed_or_left_unmeasured(tmp_path, caplog):
    items, lungs = _items()
    items = _with_lung_masks(items[:4], lungs[:4]) + items[4:]  # the second batch (of 4) has none
    net, ig = _LooksAt(lungs[0]), ["integrated_gradients"]
    mixed = _run(tmp_path / "mixed", net, ig, items, method_kwargs=IG).summary
    assert mixed["anatomy"]["source"] == "mixed" and mixed["anatomy"]["n_from_data"] == 4
    assert mixed["methods"]["integrated_gradients"]["per_image_summary"]["spillover"]["n"] == 6
    none = _run(tmp_path / "none", net, ig, items, anatomy=None, method_kwargs=IG).summary
    assert "anatomy" not in none and "spillover" not in none["methods"]["integrated_gradients"]["per_image_summary"]
    assert "lung_mask in 4 of 6 images and no anatomy to compute the others" in caplog.text
    ignored = _run(tmp_path / "ignored", net, ig, items, anatomy_key=None, method_kwargs=IG).summary
    assert ignored["anatomy"]["source"] == "computed" and ignored["anatomy"]["n_from_data"] == 0


def test_a_lung_mask_of_another_size_is_refused(tmp_path):
    items, _ = _items(4)
    items = [item | {"lung_mask": torch.zeros(1, SIZE // 2, SIZE // 2)} for item in items]
    with pytest.raises(DataError, match=r"lung_mask of shape \(4, 1, 32, 32\) does not fit the images of shape "
                                        r"\(4, 1, 64, 64\): load and resize lung_mask like the image \(nearest\)"):
        _run(tmp_path, _LooksAt(np.ones((SIZE, SIZE), bool)), ["integrated_gradients"], items)
