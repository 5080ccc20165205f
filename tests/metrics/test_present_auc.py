"""PresentClassesROCAUCMetric: MONAI's macro ROC AUC, over the classes present in the labels."""

from __future__ import annotations

import math

import numpy as np
import torch
from ignite.engine import Engine
from monai.handlers import IgniteMetricHandler, from_engine
from monai.metrics import ROCAUCMetric
from sklearn.metrics import roc_auc_score

from medbundle.metrics import PresentClassesROCAUCMetric


def _batch(labels, n_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    probs = torch.softmax(torch.as_tensor(rng.normal(size=(len(labels), n_classes))), dim=1)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(labels), n_classes).float()
    return probs, onehot


def _score(metric, probs, onehot):
    metric.reset()
    metric(y_pred=list(probs), y=list(onehot))
    return metric.aggregate()


def test_equals_monai_when_every_class_is_present():
    probs, onehot = _batch([0, 1, 2, 3] * 10)
    assert _score(PresentClassesROCAUCMetric(), probs, onehot) == _score(ROCAUCMetric(), probs, onehot)


def test_an_absent_class_is_left_out_instead_of_making_it_nan():
    labels = [0, 1, 2] * 12  # class 3 absent, as ModerateDemented in a grouped Alzheimer split
    probs, onehot = _batch(labels)
    assert math.isnan(_score(ROCAUCMetric(), probs, onehot))
    expected = np.mean([roc_auc_score(np.array(labels) == c, probs[:, c].numpy()) for c in range(3)])
    assert abs(_score(PresentClassesROCAUCMetric(), probs, onehot) - expected) < 1e-6


def test_nan_only_when_no_class_can_be_scored():
    probs, onehot = _batch([2] * 8)
    assert math.isnan(_score(PresentClassesROCAUCMetric(), probs, onehot))


def test_through_monais_ignite_handler_as_the_configs_use_it():
    labels = [0, 1, 2] * 4
    probs, onehot = _batch(labels, seed=1)
    batches = [{"pred": list(probs[:6]), "label": list(onehot[:6])}, {"pred": list(probs[6:]), "label": list(onehot[6:])}]
    engine = Engine(lambda e, batch: batch)
    IgniteMetricHandler(metric_fn=PresentClassesROCAUCMetric(), output_transform=from_engine(["pred", "label"]),
                        save_details=False).attach(engine, "val_auc")
    engine.run(batches, max_epochs=1)
    expected = np.mean([roc_auc_score(np.array(labels) == c, probs[:, c].numpy()) for c in range(3)])
    assert abs(engine.state.metrics["val_auc"] - expected) < 1e-6
