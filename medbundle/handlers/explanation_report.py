"""A full explanation report: every image an evaluator sees explained with several methods, the maps scored."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from medbundle.data.errors import DataError
from medbundle.errors import OptionError
from medbundle.explain.anatomy import ANATOMIES, anatomy_mask, restrict_to_anatomy, spillover_fraction
from medbundle.explain.measures import (
    attention_statistics,
    cascading_randomisation,
    deletion_insertion,
    localisation_scores,
    random_baseline_localisation,
    stability,
    summarise,
)
from medbundle.explain.plots import save_class_grid, save_mean_maps, save_triplet
from medbundle.explain.registry import get_explainer
from medbundle.options import as_bool
from medbundle.runtime import is_rank_zero
from medbundle.utils import atomic_write_csv, atomic_write_json, jsonable

__all__ = ["ExplanationReport"]

logger = logging.getLogger("medbundle.explain")


def _stack(batch: Any, key: str) -> torch.Tensor | None:
    """``key`` of an engine batch, decollated (list of dicts) or not, as one tensor; None when absent."""
    if isinstance(batch, dict):
        value = batch.get(key)
        return None if value is None else torch.as_tensor(value)
    values = [item.get(key) for item in batch]
    return None if any(v is None for v in values) else torch.stack([torch.as_tensor(v) for v in values])


def _ids(batch: Any, key: str) -> list[Any]:
    """``key`` of every item of an engine batch, decollated or not; None where an item has none."""
    if isinstance(batch, dict):
        ids = batch.get(key)
        return [str(i) for i in ids] if ids is not None else [None] * len(batch["image"])
    return [item.get(key) for item in batch]


def _probabilities(output: Any) -> torch.Tensor:
    """The class probabilities ``pred`` of an engine output, decollated or not, as one ``(B, K)`` tensor."""
    return _stack(output, "pred")


def _image_mask_label_id(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, list[Any]]:
    """``image``, ``mask``, ``label`` (None when absent) and the ``id`` of each item of an engine batch."""
    return _stack(batch, "image"), _stack(batch, "mask"), _stack(batch, "label"), _ids(batch, "id")


class ExplanationReport:
    """Explain every image an evaluator sees with several methods, score the maps and write a report.

    For each batch, each method explains the model's predicted class (``class_idx`` is the argmax of
    the evaluator's ``pred``). When the evaluator completes, rank 0 writes to ``output_dir``:

    - ``explanations.csv``: one row per image: id, label, prediction, confidence and, per method,
      the localisation measures against the ground-truth mask (pointing game, relevance mass,
      relevance rank, AUPRC; only where the item has a ``mask``), the relevance fraction outside the
      anatomy (``spillover``) and the deletion and insertion AUCs; with an anatomy mask, the fraction of the
      image it covers (``anatomy_fraction``);
    - ``summary.json``: the summaries of those columns per method (spillover also per class, true class when
      labels are known), the same localisation measures for random smooth maps (the baseline "far better than
      random" is judged against), the anatomy mask's size, where it came from (``source``: ``"data"``, the
      items' ``anatomy_key``; ``"computed"`` from the image; ``"mixed"``) and the spillover of a uniform map (its
      chance level: the fraction of the image outside the mask), attention statistics per class (centre of mass,
      spread, agreement) and across classes (correlation of the class-mean maps), stability under noise and
      the cascading randomisation check (on the first ``sanity_images`` images, for ``sanity_methods``);
    - ``pictures/<method>/``: image / heat map / overlay triplets (lesion outline drawn when known)
      for up to ``pictures_per_class`` images of each predicted class, a grid per true (or predicted)
      class, and the mean map per class.

    Args:
        output_dir: folder of the report.
        class_names: class names in output order.
        methods: names from :data:`medbundle.explain.registry.METHODS`.
        method_kwargs: per-method keyword arguments (``{"occlusion": {"mask_size": 8}}``).
        target_layer: layer of the CAM methods; None finds the last spatial convolution.
        anatomy: ``"brain"`` (head CT / MRI), ``"lung"`` (or ``"chest"``: frontal chest X-ray, the lung fields of
            :func:`medbundle.explain.lungs.lung_mask`), ``"body"``, or None (also ``"none"``): the anatomy mask
            of :func:`medbundle.explain.anatomy.anatomy_mask` maps are scored against for spillover, and maps are
            restricted to it in the pictures when ``restrict`` is set. Batches that carry ``anatomy_key`` use
            those masks instead of computed ones.
        anatomy_key: key of anatomy masks in the evaluator's batch (e.g. expert lung masks loaded and resized like
            the image, nonzero = anatomy); where a batch has them, they are the anatomy (even with ``anatomy``
            None when every batch has them). None: always computed.
        restrict: zero the heat maps outside the anatomy in the pictures.
        pictures_per_class: triplets written per predicted class and method.
        sanity_images: images used by the stability and randomisation checks (0 skips them).
        sanity_methods: methods those checks run for.
        deletion_steps: steps of the deletion and insertion curves.
        noise_levels: noise standard deviations of the stability check, as fractions of the data range.
        output_transform: maps ``engine.state.output`` to the class probabilities, one ``(B, K)`` tensor. The
            default stacks ``pred`` of the (decollated or not) output.
        batch_transform: maps ``engine.state.batch`` to ``(image, mask, label, ids)``: the ``(B, C, H, W)``
            images, the ground-truth masks and the (one-hot or index) labels as tensors or None when absent, and
            one id per item (None where unknown: the item is named by its position). The default reads
            ``image``, ``mask``, ``label`` and ``id`` of the (decollated or not) batch.
    """

    def __init__(
        self,
        output_dir: str,
        class_names: Sequence[str],
        methods: Sequence[str] = ("gradcam", "gradcampp", "occlusion", "integrated_gradients"),
        method_kwargs: dict | None = None,
        target_layer: str | None = None,
        anatomy: str | None = None,
        restrict: bool = False,
        pictures_per_class: int = 4,
        sanity_images: int = 16,
        sanity_methods: Sequence[str] = ("gradcam",),
        deletion_steps: int = 20,
        noise_levels: Sequence[float] = (0.01, 0.02, 0.05, 0.1),
        output_transform: Callable[[Any], torch.Tensor] = _probabilities,
        batch_transform: Callable[[Any], tuple] = _image_mask_label_id,
        anatomy_key: str | None = "lung_mask",
    ) -> None:
        self.output_dir = Path(output_dir)
        self.class_names = list(class_names)
        self.methods = list(methods)
        self.method_kwargs = method_kwargs or {}
        self.target_layer = target_layer
        self.anatomy = _anatomy_kind(anatomy)
        self.restrict = as_bool(restrict, "ExplanationReport's restrict (bundle key restrict_to_anatomy)")
        self.pictures_per_class = pictures_per_class
        self.sanity_images = sanity_images
        self.sanity_methods = [m for m in sanity_methods if m in self.methods]
        self.deletion_steps = deletion_steps
        self.noise_levels = tuple(noise_levels)
        self.output_transform, self.batch_transform = output_transform, batch_transform
        self.anatomy_key = anatomy_key or None
        self.anatomies: list[torch.Tensor | None] = []  # per batch: the data's anatomy masks, or None
        self.summary: dict = {}
        self.images: list[torch.Tensor] = []
        self.masks: list[torch.Tensor] = []
        self.labels: list[int] = []
        self.preds: list[int] = []
        self.confidences: list[float] = []
        self.ids: list[str] = []
        self.maps: dict[str, list[torch.Tensor]] = {}
        self.deletion: dict[str, list[dict]] = {}
        self.explainers: dict[str, Any] = {}

    def _explainer(self, name: str, model: torch.nn.Module):
        kwargs = dict(self.method_kwargs.get(name, {}))
        if name in ("gradcam", "gradcampp") and self.target_layer is not None:
            kwargs.setdefault("target_layer", self.target_layer)
        return get_explainer(name, model, **kwargs)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self)

    def _reset(self, engine: Engine) -> None:
        self.images, self.masks, self.labels, self.preds, self.confidences, self.ids = [], [], [], [], [], []
        self.anatomies = []
        self.maps = {m: [] for m in self.methods}
        self.deletion = {m: [] for m in self.methods}
        self.explainers = {m: self._explainer(m, _unwrap(engine.network)) for m in self.methods}

    @torch.no_grad()
    def _collect(self, engine: Engine) -> None:
        x, mask, label, ids = self.batch_transform(engine.state.batch)
        x = x.float()
        probs = self.output_transform(engine.state.output).float()
        pred = probs.argmax(1)
        self.images.append(x.cpu())
        if mask is not None:
            self.masks.append(mask.reshape(x.shape[0], *x.shape[-2:]).cpu() > 0.5)
        anatomy = _stack(engine.state.batch, self.anatomy_key) if self.anatomy_key else None
        if anatomy is not None and anatomy.numel() != x.shape[0] * x.shape[-2:].numel():
            raise DataError(f"{self.anatomy_key} of shape {tuple(anatomy.shape)} does not fit the images of shape "
                            f"{tuple(x.shape)}: load and resize {self.anatomy_key} like the image (nearest) in the "
                            "preprocessing")
        self.anatomies.append(None if anatomy is None else anatomy.reshape(x.shape[0], *x.shape[-2:]).cpu() > 0.5)
        if label is not None:
            label = label.reshape(x.shape[0], -1)
            self.labels += (label.argmax(1) if label.shape[1] > 1 else label[:, 0]).long().tolist()
        self.preds += pred.tolist()
        self.confidences += probs.max(1).values.tolist()
        start = len(self.ids)
        self.ids += [str(start + i) if item_id is None else str(item_id) for i, item_id in enumerate(ids)]
        model = _unwrap(engine.network)
        x = x.to(next(model.parameters()).device)
        for name, explainer in self.explainers.items():
            with torch.enable_grad():
                maps = explainer(x, pred)
            self.maps[name].append(maps.cpu())
            scores = deletion_insertion(model, x, maps, pred, steps=self.deletion_steps)
            self.deletion[name] += scores["per_image"]

    def __call__(self, engine: Engine) -> None:
        if not is_rank_zero() or not self.images:
            return
        images = torch.cat(self.images)
        n = len(images)
        gray = images[:, 0].numpy()
        masks = torch.cat(self.masks).numpy() if len(self.masks) == len(self.images) else None
        labels = self.labels if len(self.labels) == n else None
        anatomy, source = self._anatomy(gray)
        records = [
            {"id": self.ids[i], "pred": self.class_names[self.preds[i]], "confidence": self.confidences[i]}
            | ({"label": self.class_names[labels[i]]} if labels else {})
            for i in range(n)
        ]
        summary: dict[str, Any] = {"n_images": n, "methods": {}, "class_names": self.class_names}
        if anatomy is not None:
            summary["anatomy"] = self._anatomy_summary(anatomy, records) | source
        if masks is not None:
            baseline = random_baseline_localisation(masks)
            summary["random_baseline_localisation"] = baseline["summary"]
        for name in self.methods:
            maps = torch.cat(self.maps[name])[:, 0].numpy()
            columns: dict[str, list[float]] = {}
            if masks is not None:
                for key, values in _columns(localisation_scores(maps, masks)).items():
                    if key not in ("index", "mask_fraction"):
                        columns[key] = values
            if anatomy is not None:
                columns["spillover"] = [spillover_fraction(m, a) for m, a in zip(maps, anatomy)]
            columns["deletion_auc"] = [r["deletion_auc"] for r in self.deletion[name]]
            columns["insertion_auc"] = [r["insertion_auc"] for r in self.deletion[name]]
            for i, record in enumerate(records):
                record.update({f"{name}_{key}": values[i] for key, values in columns.items()})
            stats = attention_statistics(maps, labels if labels else self.preds)
            summary["methods"][name] = {
                "per_image_summary": summarise([{k: v[i] for k, v in columns.items()} for i in range(n)]),
                "attention": {
                    "per_class": _named(stats["per_class"], self.class_names),
                    "between_classes": [
                        {"classes": [self.class_names[k] for k in r["classes"]], "correlation": r["correlation"]}
                        for r in stats["between_classes"]
                    ],
                },
            }
            if anatomy is not None:
                groups = labels if labels else self.preds
                summary["methods"][name]["spillover_per_class"] = {
                    self.class_names[k]: summarise([{"spillover": columns["spillover"][i]}
                                                    for i in range(n) if groups[i] == k])["spillover"]
                    for k in sorted(set(groups))
                }
            if hasattr(self.explainers[name], "layer_name"):
                summary["methods"][name]["target_layer"] = self.explainers[name].layer_name(images[:1])
            self._pictures(name, gray, maps, masks, anatomy, labels, stats["mean_maps"])
        self._sanity_checks(engine, images, summary)
        self._write(records, summary)
        self.summary = summary

    def _anatomy(self, gray: np.ndarray) -> tuple[np.ndarray | None, dict]:
        """The anatomy masks: the batches' ``anatomy_key`` where they have it, else computed from the image; and
        ``{"source", "n_from_data"}``. None when no mask comes from the data and no anatomy kind is set."""
        sizes = [len(x) for x in self.images]
        n_data = sum(size for size, a in zip(sizes, self.anatomies) if a is not None)
        if self.anatomy is None and n_data < len(gray):
            if n_data:
                logger.warning(f"{self.anatomy_key} in {n_data} of {len(gray)} images and no anatomy to compute the "
                               "others: spillover not measured; set anatomy, or give every item a "
                               f"{self.anatomy_key}")
            return None, {}
        parts, start = [], 0
        for size, data in zip(sizes, self.anatomies):
            grays = gray[start : start + size]
            parts.append(data.numpy() if data is not None else np.stack([anatomy_mask(g, self.anatomy) for g in grays]))
            start += size
        source = "data" if n_data == len(gray) else "computed" if n_data == 0 else "mixed"
        return np.concatenate(parts), {"source": source, "n_from_data": n_data} | (
            {"key": self.anatomy_key} if n_data else {})

    def _anatomy_summary(self, anatomy: np.ndarray, records: list[dict]) -> dict:
        """The anatomy masks' sizes (also a column of ``records``) and the spillover of a uniform map (chance)."""
        fractions = anatomy.reshape(len(anatomy), -1).mean(axis=1)
        for record, fraction in zip(records, fractions):
            record["anatomy_fraction"] = float(fraction)
        return {
            "kind": self.anatomy or self.anatomy_key,
            "mask_fraction": summarise([{"f": float(f)} for f in fractions])["f"],
            "uniform_map_spillover": float(1.0 - fractions.mean()),
        }

    def _pictures(self, name, gray, maps, masks, anatomy, labels, mean_maps) -> None:
        folder = self.output_dir / "pictures" / name
        shown = restrict_to_anatomy(maps, anatomy) if self.restrict and anatomy is not None else maps
        count: dict[int, int] = {}
        for i, pred in enumerate(self.preds):
            if count.get(pred, 0) >= self.pictures_per_class:
                continue
            count[pred] = count.get(pred, 0) + 1
            truth = f", true {self.class_names[labels[i]]}" if labels else ""
            title = f"{name}: {self.ids[i]} (pred {self.class_names[pred]} {self.confidences[i]:.2f}{truth})"
            save_triplet(
                folder / f"{_safe(self.ids[i])}.png",
                gray[i],
                shown[i],
                title=title,
                gt_mask=None if masks is None else masks[i],
            )
        save_class_grid(folder / "grid.png", gray, shown, labels or self.preds, self.preds, self.class_names)
        save_mean_maps(folder / "mean_maps.png", _named(mean_maps, self.class_names))

    def _sanity_checks(self, engine: Engine, images: torch.Tensor, summary: dict) -> None:
        k = min(self.sanity_images, len(images))
        if k < 2:
            return
        model = _unwrap(engine.network)
        x = images[:k].to(next(model.parameters()).device)
        for name in self.sanity_methods:
            summary["methods"][name]["stability"] = stability(
                self.explainers[name], model, x, noise_levels=self.noise_levels
            )
            randomisation = cascading_randomisation(lambda m, name=name: self._explainer(name, m), model, x)
            randomisation.pop("per_image", None)
            summary["methods"][name]["randomisation"] = randomisation
            summary["methods"][name]["stability"].pop("per_image", None)

    def _write(self, records: list[dict], summary: dict) -> None:
        atomic_write_csv(self.output_dir / "explanations.csv", records)
        atomic_write_json(self.output_dir / "summary.json", jsonable(summary))
        logger.info(f"explanations of {len(records)} images ({', '.join(self.methods)}) -> {self.output_dir}")
        for name, stats in summary["methods"].items():
            s = stats["per_image_summary"]
            if "spillover" in s:
                logger.info(
                    f"{name}: {s['spillover']['mean']:.3f} of the relevance outside the {summary['anatomy']['kind']} "
                    f"(a uniform map: {summary['anatomy']['uniform_map_spillover']:.3f})"
                )
            if "pointing_game" in s:
                base = summary["random_baseline_localisation"]
                logger.info(
                    f"{name}: pointing game {s['pointing_game']['mean']:.3f} (random {base['pointing_game']['mean']:.3f}), "
                    f"relevance mass {s['relevance_mass_accuracy']['mean']:.3f} "
                    f"(random {base['relevance_mass_accuracy']['mean']:.3f})"
                )


def _anatomy_kind(anatomy: str | None) -> str | None:
    """The anatomy ``kind`` of :func:`anatomy_mask`, or None for none; checked when the handler is built."""
    if anatomy is None or str(anatomy).strip().lower() in ("", "none", "null"):
        return None
    if anatomy not in ANATOMIES:
        raise OptionError(f"anatomy={anatomy!r} (ExplanationReport, bundle key anatomy) is not an anatomy: "
                          f"use one of {', '.join(ANATOMIES)}, or none")
    return anatomy


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The network inside a ``DistributedDataParallel`` (or ``DataParallel``) wrapper."""
    return getattr(model, "module", model)


def _columns(records: list[dict]) -> dict[str, list]:
    return {key: [r[key] for r in records] for key in records[0]} if records else {}


def _named(per_class: dict, class_names: Sequence[str]) -> dict:
    return {class_names[int(k)] if str(k).isdigit() else str(k): v for k, v in per_class.items()}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)
