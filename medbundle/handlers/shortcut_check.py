"""Shortcut check of an evaluator's model: its accuracy with the anatomy blanked, and with everything else blanked."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from medbundle.data.errors import DataError
from medbundle.errors import OptionError
from medbundle.explain.measures._common import _eval
from medbundle.explain.measures.shortcuts import VARIANTS, anatomy_shortcut_scores, check_fill
from medbundle.runtime import is_rank_zero
from medbundle.utils import atomic_write_json, jsonable

__all__ = ["ShortcutCheck"]

logger = logging.getLogger("medbundle.handlers")

_WHAT = {"original": "the images", "inside_only": "only the anatomy", "outside_only": "the anatomy removed"}


def _items(batch: Any, keys: Sequence[str]) -> list[dict[str, Any]]:
    """The ``keys`` of every item of an engine batch, decollated (list of dicts) or not; None where absent."""
    if isinstance(batch, dict):
        n = len(batch[keys[0]])
        return [{k: (None if batch.get(k) is None else batch[k][i]) for k in keys} for i in range(n)]
    return [{k: item.get(k) for k in keys} for item in batch]


def _plain(value: Any) -> torch.Tensor:
    """``value`` as a plain CPU tensor (a MetaTensor's metadata dropped, so that keeping it stays cheap)."""
    value = value.as_tensor() if hasattr(value, "as_tensor") else torch.as_tensor(value)
    return value.detach().cpu()


class ShortcutCheck:
    """Score an evaluator's model on its images with the anatomy blanked ("outside_only") and with everything but
    the anatomy blanked ("inside_only"), against chance; flag a model that classifies with the anatomy removed.

    While the evaluator runs, each item's image, label and anatomy mask (for chest X-rays the lung mask the
    bundle's preprocessing loads beside the image, resized like it with nearest-neighbour interpolation) are kept
    on the CPU; items without a mask or a label are skipped and counted. When the evaluator completes, rank 0 runs
    the network (unwrapped from DDP, in eval mode, without gradients, with the evaluator's inferer and device) on
    the three variants of :func:`medbundle.explain.measures.anatomy_shortcut_scores` in batches, writes
    ``<output_dir>/shortcuts.json`` (atomically), logs one line per variant, and logs a WARNING when the
    outside-only accuracy's lower 95 % bound is above the majority-class rate: the model reads its answer outside
    the anatomy (text, devices, patient size or age, the source hospital).

    Args:
        output_dir: folder of ``shortcuts.json``.
        class_names: class names in output order (the network returns logits for them).
        network: the network; None: the evaluator's ``network``.
        image_key: key of the images ``(C, H, W)`` in the evaluator's batch.
        mask_key: key of the anatomy masks ``(1, H, W)`` or ``(H, W)`` (nonzero = anatomy).
        label_key: key of the labels (index or one-hot).
        fill: value of the blanked pixels: ``"mean"`` (the kept region's mean per image) or a number.
        batch_size: images per forward pass.
        level: confidence level of the intervals.
    """

    def __init__(
        self,
        output_dir: str,
        class_names: Sequence[str],
        network: torch.nn.Module | None = None,
        image_key: str = "image",
        mask_key: str = "lung_mask",
        label_key: str = "label",
        fill: Any = "mean",
        batch_size: int = 32,
        level: float = 0.95,
    ) -> None:
        try:
            self.fill = check_fill(fill)
        except ValueError as e:
            raise OptionError(f"{e} (ShortcutCheck's fill)") from e
        if int(batch_size) < 1:
            raise OptionError(f"batch_size={batch_size} (ShortcutCheck): pass a positive number of images per pass")
        self.output_dir = Path(output_dir)
        self.class_names = list(class_names)
        self.network = network
        self.keys = (image_key, mask_key, label_key)
        self.batch_size, self.level = int(batch_size), float(level)
        self.result: dict = {}
        self._reset()

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self)

    def _reset(self, engine: Engine | None = None) -> None:
        self.images: list[torch.Tensor] = []
        self.masks: list[torch.Tensor] = []
        self.labels: list[int] = []
        self.skipped = {"no_mask": 0, "no_label": 0}

    def _collect(self, engine: Engine) -> None:
        image_key, mask_key, label_key = self.keys
        for item in _items(engine.state.batch, self.keys):
            image, mask, label = (item[k] for k in self.keys)
            if mask is None or label is None:
                self.skipped["no_mask" if mask is None else "no_label"] += 1
                continue
            image, mask = _plain(image).float(), _plain(mask)
            if mask.numel() != image.shape[-2:].numel():
                raise DataError(f"{mask_key} of shape {tuple(mask.shape)} does not fit its {image_key} of shape "
                                f"{tuple(image.shape)}: load and resize {mask_key} like {image_key} (nearest) in "
                                "the preprocessing")
            label = _plain(label).reshape(-1)
            self.images.append(image)
            self.masks.append(mask.reshape(image.shape[-2:]) > 0.5)
            self.labels.append(int(label.argmax() if label.numel() > 1 else label[0]))

    def _predict(self, engine: Engine):
        """``x -> (B, K)`` softmax probabilities of the network on the evaluator's device, through its inferer."""
        network = self.network if self.network is not None else engine.network
        network = getattr(network, "module", network)  # never the DDP wrapper: its forward waits for every rank
        device = getattr(engine.state, "device", None)
        device = device if device is not None else next(network.parameters()).device
        inferer = getattr(engine, "inferer", None)

        def predict(x: torch.Tensor) -> torch.Tensor:
            x = torch.as_tensor(x).to(device)
            with torch.no_grad():
                logits = inferer(x, network) if inferer is not None else network(x)
            return torch.softmax(logits.float(), dim=1).cpu()

        return network, predict

    def __call__(self, engine: Engine) -> None:
        if not is_rank_zero():
            return
        _, mask_key, _ = self.keys
        result: dict[str, Any] = {"mask_key": mask_key, "class_names": self.class_names,
                                  "n_skipped_no_mask": self.skipped["no_mask"],
                                  "n_skipped_no_label": self.skipped["no_label"]}
        if self.images:
            network, predict = self._predict(engine)
            with _eval(network):
                scores = anatomy_shortcut_scores(predict, torch.stack(self.images), torch.stack(self.masks),
                                                 np.asarray(self.labels), len(self.class_names), fill=self.fill,
                                                 batch_size=self.batch_size, level=self.level)
            scores["chance"]["majority_class"] = self.class_names[scores["chance"]["majority_class"]]
            result.update(scores)
        else:  # a bundle whose data has no anatomy masks: nothing to check, no file
            result.update({"n": 0, "flag": False})
            self.result = result
            logger.info(f"shortcut check not run: no image had a {mask_key} and a label "
                        f"({self.skipped['no_mask']} without {mask_key}, {self.skipped['no_label']} without label)")
            return
        atomic_write_json(self.output_dir / "shortcuts.json", jsonable(result))
        self.result = result
        self._log(result)

    def _log(self, result: dict) -> None:
        mask_key, skipped = result["mask_key"], result["n_skipped_no_mask"] + result["n_skipped_no_label"]
        note = f" ({skipped} images without {mask_key} or label skipped)" if skipped else ""
        if not result["n"]:
            logger.warning(f"shortcut check: no image had a {mask_key} and a label, nothing checked{note}")
            return
        chance = result["chance"]
        for variant in VARIANTS:
            acc, auc = result[variant]["accuracy"], result[variant]["auc"]
            logger.info(f"shortcut check, {variant} ({_WHAT[variant]}): accuracy {acc['value']:.3f} "
                        f"[{acc['lo']:.3f}, {acc['hi']:.3f}] of {acc['n']} images"
                        + (f", AUC {auc:.3f}" if auc is not None else "")
                        + f" (chance: majority {chance['majority']:.3f}, 1/K {chance['uniform']:.3f}){note}")
        if result["flag"]:
            acc = result["outside_only"]["accuracy"]
            logger.warning(f"shortcut: the model classifies with the {mask_key} region blanked: accuracy "
                           f"{acc['value']:.3f} ({result['level']:.0%} lower bound {acc['lo']:.3f}) above the majority "
                           f"rate {chance['majority']:.3f}; it reads cues outside the anatomy (text, devices, patient "
                           f"size or age, source): see {self.output_dir / 'shortcuts.json'}")
