"""One predictor for every bundle: load a bundle's ``inference.json`` and trained model once, answer per image.

The MONAI Label app (:mod:`medbundle.serving.label_app`) and the web demo (:mod:`medbundle.demo`) both answer through
:class:`BundlePredictor`, so there is one inference path: the bundle's own ``preprocessing``, ``network``,
``inferer`` and checkpoint, exactly as ``inference.json`` builds them, plus the calibration record
(``calibration.json``) that ``evaluate.json`` writes beside the model, and the bundle's Grad-CAM layer.

Example::

    from medbundle.serving import BundlePredictor

    predictor = BundlePredictor("bundles/pneumonia_xray")           # the shipped model
    answer = predictor.predict("RG1_UNCR.dcm", explain="gradcam")
    answer.label, answer.probabilities, answer.prediction_set, answer.refer
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medbundle.calibration import apply_calibration, load_calibration
from medbundle.data.errors import DataError
from medbundle.inferers import averaged_views
from medbundle.runs.bundle import BUNDLES
from medbundle.runs.bundle import resolve_bundle as _resolve_bundle
from medbundle.runs.record import bundle_parser

__all__ = ["BundlePredictor", "Prediction", "PredictorError", "resolve_bundle", "shipped_bundles", "EXPLAIN_METHODS"]

logger = logging.getLogger("medbundle.serving")

#: the bundles of the medbundle source tree.

#: the explanation methods a predictor computes on request (keys of :data:`medbundle.explain.METHODS`).
EXPLAIN_METHODS = ("gradcam", "gradcampp", "occlusion", "integrated_gradients")


class PredictorError(ValueError):
    """A bundle or run folder that cannot serve: the message is one line saying what to do."""


def resolve_bundle(bundle: str | os.PathLike) -> Path:
    """The bundle folder ``bundle`` names: a folder holding ``configs/inference.json``, or a bundle name.

    Raises:
        PredictorError: no such bundle, with the names of the bundles that exist.
    """
    try:
        return _resolve_bundle(bundle, "inference.json")
    except ValueError as e:
        raise PredictorError(str(e)) from None


def shipped_bundles(bundles_dir: str | os.PathLike = BUNDLES) -> list[str]:
    """The names of the bundles in ``bundles_dir`` that ship a trained model (``models/model.pt`` beside
    ``configs/inference.json``), sorted: what the MONAI Label app and the web demo serve by default."""
    return sorted(p.parent.parent.name for p in Path(bundles_dir).glob("*/models/model.pt")
                  if (p.parent.parent / "configs" / "inference.json").is_file())


@dataclass
class Prediction:
    """The answer for one image.

    Attributes:
        class_names: the bundle's classes, in output order.
        probs: the model's softmax probabilities, one per class.
        calibrated: the temperature-scaled probabilities (None without a calibration record for this model).
        label: the predicted class (argmax of the calibrated probabilities where there are some; the same class).
        confidence: the probability of ``label`` (calibrated where possible).
        prediction_set: the conformal prediction set (class names), None without a calibration record.
        refer: True when the prediction set is not a single class ("refer to a radiologist"), None without one.
        decision: for two-class bundles with an operating threshold: the positive class or ``not <class>``.
        image: the preprocessed image the model saw, ``(H, W)`` float.
        heatmap: the explanation map ``(H, W)`` in ``[0, 1]`` when one was asked for, else None.
        method: the explanation method of ``heatmap``.
    """

    class_names: list[str]
    probs: np.ndarray
    calibrated: np.ndarray | None
    label: str
    confidence: float
    prediction_set: list[str] | None = None
    refer: bool | None = None
    decision: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    heatmap: np.ndarray | None = field(default=None, repr=False)
    method: str | None = None

    @property
    def probabilities(self) -> dict[str, float]:
        """``{class: probability}``, calibrated where the bundle has a calibration record for this model."""
        p = self.calibrated if self.calibrated is not None else self.probs
        return {c: float(v) for c, v in zip(self.class_names, p)}

    def overlay(self, alpha: float = 0.45) -> np.ndarray:
        """The heat map over the image as RGB ``uint8`` ``(H, W, 3)``.

        Raises:
            ValueError: when the prediction was made without an explanation.
        """
        from medbundle.explain.plots import overlay

        if self.heatmap is None:
            raise ValueError("no heat map: predict with explain='gradcam' (or another method) first")
        return (overlay(self.image, self.heatmap, alpha=alpha) * 255).round().astype(np.uint8)

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer: label, probabilities (raw and calibrated), confidence, prediction set, refer."""
        out: dict[str, Any] = {
            "label": self.label,
            "confidence": round(float(self.confidence), 6),
            "probabilities": {c: round(float(v), 6) for c, v in zip(self.class_names, self.probs)},
        }
        if self.calibrated is not None:
            out["calibrated_probabilities"] = {c: round(float(v), 6) for c, v in zip(self.class_names, self.calibrated)}
            out["prediction_set"] = self.prediction_set
            out["refer"] = bool(self.refer)
        if self.decision is not None:
            out["decision"] = self.decision
        if self.method is not None:
            out["explanation"] = self.method
        return out


def _data_error(exc: BaseException) -> DataError | None:
    """The :class:`DataError` behind ``exc`` (MONAI wraps transform errors in ``RuntimeError``), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, DataError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class BundlePredictor:
    """A bundle's trained model, loaded once, answering per image with the bundle's own inference path.

    The bundle's ``inference.json`` (with its ``metadata.json``) is parsed once with ``bundle_root`` and
    ``output_dir`` set: ``preprocessing``, ``network`` (rebuilt from the run's record where ``run_dir`` holds one),
    ``inferer``, ``ckpt_path``, ``calibration_path``, ``class_names`` and ``target_layer`` are taken from it as they
    are. The checkpoint loads with ``weights_only=True`` (a model file is data). Calls are serialised by a lock (a
    server may call from several threads; explanations register hooks on the network).

    Args:
        bundle: a bundle folder (``bundles/pneumonia_xray``) or a bundle name.
        run_dir: a run folder of ``train.json`` (its ``models/model.pt`` and ``run.json``); None: the model shipped
            with the bundle (``<bundle>/models/model.pt``).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        overrides: further bundle keys (e.g. ``{"amp": False}``); values are used as given, never evaluated from a
            file the user received.

    Raises:
        PredictorError: no such bundle, or no trained model for it.
    """

    def __init__(self, bundle: str | os.PathLike, run_dir: str | os.PathLike | None = None, device: str = "cpu",
                 overrides: Mapping[str, Any] | None = None) -> None:
        self.bundle_root = resolve_bundle(bundle)
        self.name = self.bundle_root.name
        configs = self.bundle_root / "configs"
        if run_dir is not None and not Path(run_dir).expanduser().is_dir():
            raise PredictorError(f"{run_dir}: no such run folder. Pass the --output_dir of a finished train.json run.")
        output_dir = Path(run_dir).expanduser().resolve() if run_dir is not None else self.bundle_root
        settings = {"bundle_root": str(self.bundle_root), "output_dir": str(output_dir),
                    "device": f"$medbundle.runtime.resolve_device({str(device)!r})", **dict(overrides or {})}
        self.parser = bundle_parser([str(configs / "inference.json")], settings, meta_file=str(configs / "metadata.json"))
        self.model_path = Path(self.parser.get_parsed_content("ckpt_path"))
        if run_dir is not None:  # a run folder serves its own model, never the shipped one in its place
            self.model_path = output_dir / "models" / "model.pt"
            self.parser["ckpt_path"] = str(self.model_path)
        if not self.model_path.is_file():
            raise PredictorError(
                f"{self.name}: no trained model at {self.model_path}. Train the bundle (train.json) and pass its "
                f"--output_dir as the run folder, or ship a model in {self.bundle_root / 'models' / 'model.pt'}.")
        self.run_dir = None if run_dir is None else output_dir
        self.device = self.parser.get_parsed_content("device")
        self.class_names = [str(c) for c in self.parser.get_parsed_content("class_names")]
        self.spatial_size = list(self.parser.get_parsed_content("spatial_size"))
        self.preprocessing = self.parser.get_parsed_content("preprocessing")
        self.inferer = self.parser.get_parsed_content("inferer")
        self.network = self.parser.get_parsed_content("network")
        self._load_weights()
        self.network.eval()
        self.target_layer = self.parser.get_parsed_content("target_layer")
        self.channels_last = bool(self.parser.get_parsed_content("channels_last"))
        self.calibration = load_calibration(self.parser.get_parsed_content("calibration_path"), self.model_path,
                                            self.class_names, views=averaged_views(self.inferer))
        self.max_pixels = self.parser.get_parsed_content("max_pixels")
        self._lock = threading.Lock()
        logger.info("serving %s: %s (%s), classes %s, calibration %s", self.name, self.model_path, self.device,
                    self.class_names, "yes" if self.calibration else "none")

    def _load_weights(self) -> None:
        """Load ``ckpt_path`` as ``inference.json``'s ``CheckpointLoader`` does (``{"model": state_dict}`` or a
        bare state dict), as data only."""
        try:
            checkpoint = torch.load(self.model_path, map_location=self.device, weights_only=True)
        except Exception as e:
            raise PredictorError(f"{self.model_path}: not a readable model file ({type(e).__name__}). Train the "
                                 f"bundle again or restore the file.") from e
        state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, Mapping) else None
        if not isinstance(state, Mapping):
            raise PredictorError(f"{self.model_path}: holds no model state dict. Pass a model.pt written by train.json.")
        try:
            self.network.load_state_dict(state)
        except RuntimeError as e:
            raise PredictorError(f"{self.model_path}: does not fit the {self.name} network ("
                                 f"{str(e).splitlines()[0]}). Pass the run folder the model was trained in.") from e

    @property
    def info(self) -> dict[str, Any]:
        """What a client needs to know about the model: name, classes, input size, calibration, model file."""
        return {"name": self.name, "classes": self.class_names, "spatial_size": self.spatial_size,
                "model": str(self.model_path), "run_dir": None if self.run_dir is None else str(self.run_dir),
                "calibrated": self.calibration is not None, "explain_methods": list(EXPLAIN_METHODS)}

    def preprocess(self, path: str | os.PathLike) -> torch.Tensor:
        """The bundle's preprocessing of one image file: ``(1, H, W)`` float32.

        Raises:
            DataError: a file the bundle cannot read (not an image, a 3D volume, too many pixels, ...), one line.
        """
        if not Path(path).is_file():
            raise DataError(f"{path}: no such file. Send an existing PNG, JPEG or DICOM file.")
        try:
            image = self.preprocessing({"image": str(path)})["image"]
        except Exception as e:
            cause = _data_error(e)
            if cause is not None:
                raise cause from None
            raise DataError(f"{Path(path).name}: cannot be read as a 2D image by {self.name} "
                            f"({type(e).__name__}). Send a PNG, JPEG or DICOM image.") from e
        return torch.as_tensor(image).float()

    def predict(self, path: str | os.PathLike, explain: str | None = None) -> Prediction:
        """Classify one image file and, on request, explain the predicted class.

        Args:
            path: a PNG, JPEG, BMP, TIFF, NIfTI (2D) or DICOM file.
            explain: None, or one of :data:`EXPLAIN_METHODS` for a heat map of the predicted class.

        Raises:
            DataError: a file the bundle cannot read.
            ValueError: an unknown explanation method.
        """
        if explain is not None and explain not in EXPLAIN_METHODS:
            raise ValueError(f"unknown explanation {explain!r}: choose one of {', '.join(EXPLAIN_METHODS)}")
        image = self.preprocess(path)
        with self._lock:
            probs = self._probabilities(image[None])[0]
            heatmap = self._explain(image[None], int(probs.argmax()), explain) if explain else None
        return self._answer(probs, image[0].numpy(), heatmap, explain)

    def _probabilities(self, batch: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            logits = self.inferer(batch.to(self.device), self.network)
        return torch.softmax(logits.float(), dim=1).cpu().numpy().astype(np.float64)

    def _explain(self, batch: torch.Tensor, class_idx: int, method: str) -> np.ndarray:
        from medbundle.explain import get_explainer

        kwargs = {"channels_last": self.channels_last}
        if method in ("gradcam", "gradcampp"):
            kwargs["target_layer"] = self.target_layer
        maps = get_explainer(method, self.network, **kwargs)(batch.to(self.device), class_idx)
        return maps[0, 0].detach().float().cpu().numpy()

    def _answer(self, probs: np.ndarray, image: np.ndarray, heatmap: np.ndarray | None, method: str | None) -> Prediction:
        calibrated = prediction_set = refer = decision = None
        shown = probs
        if self.calibration is not None:
            applied = apply_calibration(probs[None], self.calibration)
            calibrated = shown = applied["probs"][0]
            prediction_set = [c for c, s in zip(self.class_names, applied["sets"][0]) if s]
            refer = bool(applied["refer"][0])
            if applied["decision"] is not None:
                positive = self.class_names[applied["positive_class"]]
                decision = positive if applied["decision"][0] else f"not {positive}"
        k = int(np.argmax(shown))
        return Prediction(self.class_names, probs, calibrated, self.class_names[k], float(shown[k]), prediction_set,
                          refer, decision, image, heatmap, method)

    def predict_many(self, paths: Sequence[str | os.PathLike]) -> list[Prediction]:
        """:meth:`predict` for each file, without explanations."""
        return [self.predict(p) for p in paths]
