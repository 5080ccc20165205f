"""A bundle's trained model as a MONAI Label classification infer task, answering through :class:`BundlePredictor`.

MONAI Label's ``BundleInferTask`` imports torchvision and fails on classification bundles; this task keeps MONAI
Label's ``BasicInferTask`` interface (``info``, ``is_valid``, ``__call__``) and hands every image to the bundle's
predictor, so the server answers with exactly the bundle's ``inference.json`` path, calibration and Grad-CAM.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask

from medbundle.serving import BundlePredictor, model_card

__all__ = ["BundleClassifyTask", "dicom_file_of"]

logger = logging.getLogger("medbundle.serving.label")

#: the suffixes a file inside a DICOMweb series folder may have (Orthanc's WADO files carry none or ``.dcm``).
_DICOM_SUFFIXES = ("", ".dcm", ".dicom")


def dicom_file_of(series_dir: str | os.PathLike) -> str:
    """The one DICOM file of a series folder (as MONAI Label's DICOMweb datastore downloads it).

    Raises:
        DataError: an empty folder, or a series of several instances (a 3D volume: the bundles are 2D).
    """
    from medbundle.data.errors import DataError

    files = sorted(p for p in Path(series_dir).iterdir() if p.is_file() and p.suffix.lower() in _DICOM_SUFFIXES)
    if not files:
        raise DataError(f"series {Path(series_dir).name}: no DICOM instance was downloaded. Check the DICOMweb "
                        f"server holds the series.")
    if len(files) > 1:
        raise DataError(f"series {Path(series_dir).name}: {len(files)} instances, a 3D volume; the model is 2D. "
                        f"Send one 2D image (a single-instance series, PNG, JPEG or DICOM file).")
    return str(files[0])


class BundleClassifyTask(BasicInferTask):
    """One bundle's trained model, served as a MONAI Label ``classification`` infer task.

    The request's ``image`` is a file path (a datastore image, an upload) or a series folder of one DICOM instance.
    The answer (``result_json``) is the predictor's :meth:`Prediction.to_dict` plus ``labels`` and ``scores`` in
    the bundle's class order; with ``output: "image"`` (or ``explain``) in the request the task also writes the
    Grad-CAM overlay as a PNG file and returns its path as the result file.

    Args:
        bundle: a bundle name or folder.
        run_dir: a run folder to serve instead of the model shipped with the bundle.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    def __init__(self, bundle: str | os.PathLike, run_dir: str | os.PathLike | None = None, device: str = "cpu"):
        self.predictor = BundlePredictor(bundle, run_dir=run_dir, device=device)
        self.card = model_card(self.predictor.bundle_root)
        super().__init__(
            path=str(self.predictor.model_path),
            network=None,
            type=InferType.CLASSIFICATION,
            labels={c: i for i, c in enumerate(self.predictor.class_names)},
            dimension=2,
            description=self.card.get("description") or f"{self.predictor.name} classifier",
            config={"explain": "gradcam"},
        )

    def pre_transforms(self, data=None) -> list:
        return []  # the bundle's own preprocessing runs in the predictor

    def post_transforms(self, data=None) -> list:
        return []

    def is_valid(self) -> bool:
        return self.predictor.model_path.is_file()

    def info(self) -> dict[str, Any]:
        info = super().info()
        info.update({"classes": list(self.predictor.class_names), "predictor": self.predictor.info,
                     "model_card": self.card})
        return info

    def __call__(self, request: dict[str, Any], callbacks=None) -> tuple[str | None, dict[str, Any]]:
        """Classify ``request["image"]``; the overlay PNG's path is returned when the request asks for it."""
        image = request["image"]
        if os.path.isdir(image):
            image = dicom_file_of(image)
        wants_image = request.get("output") == "image" or bool(request.get("explain_map"))
        explain = (request.get("explain") or "gradcam") if wants_image else None
        answer = self.predictor.predict(image, explain=explain)
        result = answer.to_dict()
        scores = answer.calibrated if answer.calibrated is not None else answer.probs
        result.update({"model": self.predictor.name, "labels": list(answer.class_names),
                       "scores": [round(float(s), 6) for s in scores]})
        if not wants_image:
            return None, result
        from PIL import Image

        fd, png = tempfile.mkstemp(prefix="medbundle-overlay-", suffix=".png")
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(answer.overlay()).save(f, format="PNG")
        return png, result
