"""CalibrationFit, PredictiveUncertainty, and the report / predictions handlers reading what they produce,
on real MONAI evaluators (validation first, then test, as evaluate.json runs them)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from monai.engines import SupervisedEvaluator
from monai.transforms import Activationsd, Compose
from torch import nn

from medbundle.errors import OptionError
from medbundle.handlers import CalibrationFit, ClassificationReport, PredictionsWriter, PredictiveUncertainty

NAMES = ["normal", "pneumonia"]


class _Net(nn.Module):
    """Logits = 4 * (mean intensity of the left half - 0.5): over-confident, and flips matter."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(4.0))

    def forward(self, x):
        s = self.scale * (x[..., : x.shape[-1] // 2].mean(dim=(1, 2, 3)) - 0.5)
        return torch.stack([-s, s], dim=1)


def _items(n, seed, labelled=True):
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        y = int(rng.random() < 0.5)
        img = np.clip(rng.normal(0.5 + (0.08 if y else -0.08), 0.1, size=(1, 16, 16)), 0, 1).astype(np.float32)
        item = {"image": torch.from_numpy(img), "id": f"img{seed}_{i}.png"}
        if labelled:
            item["label"] = torch.nn.functional.one_hot(torch.tensor(y), 2).float()
        items.append(item)
    return items


def _evaluator(items, net, handlers):
    loader = torch.utils.data.DataLoader(items, batch_size=16, shuffle=False)
    return SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=loader, network=net,
                               postprocessing=Compose([Activationsd(keys="pred", softmax=True)]),
                               val_handlers=handlers)


def test_fit_on_validation_then_report_on_test(tmp_path):
    torch.manual_seed(0)
    net = _Net()
    model = tmp_path / "models" / "model.pt"
    model.parent.mkdir()
    torch.save(net.state_dict(), model)
    cal_path = tmp_path / "models" / "calibration.json"
    fit = CalibrationFit(str(cal_path), str(model), NAMES, threshold_rule="sensitivity:0.9", alpha=0.1)
    _evaluator(_items(120, 0), net, [fit]).run()
    record = json.loads(cal_path.read_text())
    assert record["fitted_on"]["n"] == 120 and record["threshold"]["rule"] == "sensitivity:0.9"
    assert record["threshold"]["val_sensitivity"] >= 0.9 and record == fit.record

    unc = PredictiveUncertainty("tta", 4)
    report = ClassificationReport(str(tmp_path / "eval"), NAMES, calibration_path=str(cal_path),
                                  model_path=str(model), uncertainty=unc, prevalence=0.1)
    _evaluator(_items(80, 1), net, [unc, report]).run()
    assert len(unc.entropy) == 80 and all(0 <= e <= np.log(2) + 1e-9 for e in unc.entropy)
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["calibration"]["temperature"] == pytest.approx(record["temperature"])
    assert m["clinical"]["binary"]["threshold"] == pytest.approx(record["threshold"]["value"])
    assert m["clinical"]["binary"]["at_prevalence"]["prevalence"] == 0.1
    assert m["uncertainty"]["method"] == "tta" and m["uncertainty"]["passes"] == 4
    assert m["conformal"]["n"] == 80 and "referral.png" in m["files"]

    # inference: the same record adds columns to predictions.csv; a retrained model's file is ignored
    writer = PredictionsWriter(str(tmp_path / "infer"), NAMES, calibration_path=str(cal_path), model_path=str(model),
                               uncertainty=PredictiveUncertainty("tta", 2))
    _evaluator(_items(10, 2, labelled=False), net, [writer.uncertainty, writer]).run()
    with open(tmp_path / "infer" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and {"cal_prob_pneumonia", "decision", "prediction_set", "refer", "entropy"} <= set(rows[0])
    torch.save({"other": torch.zeros(1)}, model)
    plain = PredictionsWriter(str(tmp_path / "infer2"), NAMES, calibration_path=str(cal_path), model_path=str(model))
    _evaluator(_items(10, 2, labelled=False), net, [plain]).run()
    with open(tmp_path / "infer2" / "predictions.csv", newline="") as f:
        assert "refer" not in next(csv.DictReader(f))


def test_bad_keys_fail_when_the_handlers_are_built(tmp_path):
    with pytest.raises(OptionError, match="threshold_rule"):
        CalibrationFit("c.json", "m.pt", NAMES, threshold_rule="best")
    with pytest.raises(OptionError, match="positive_class"):
        CalibrationFit("c.json", "m.pt", NAMES, positive_class="covid")
    with pytest.raises(OptionError, match="conformal_alpha"):
        CalibrationFit("c.json", "m.pt", NAMES, alpha=1.5)
    with pytest.raises(OptionError, match="prevalence"):
        ClassificationReport(str(tmp_path), NAMES, prevalence=0)
    with pytest.raises(OptionError, match="uncertainty"):
        PredictiveUncertainty("dropout", 8)
    none = PredictiveUncertainty("none", 8)
    assert not none.enabled and none.values(3) is None
