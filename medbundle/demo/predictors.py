"""The predictors the demo serves: one :class:`BundlePredictor` per (bundle, run folder), loaded once per process.

``python -m medbundle.demo`` loads the first one before the server starts (a bad ``--bundle`` or ``--run_dir`` is a
one-line error there); the page script, run by Streamlit in the same process, gets the same object back.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from medbundle.serving import BundlePredictor
from medbundle.serving.predictor import BUNDLES, resolve_bundle, shipped_bundles

__all__ = ["get_predictor", "trained_bundles", "demo_images"]

_PREDICTORS: dict[tuple[str, str | None], BundlePredictor] = {}
_LOCK = threading.Lock()


def get_predictor(bundle: str | os.PathLike, run_dir: str | os.PathLike | None = None) -> BundlePredictor:
    """The predictor of ``bundle`` (with the model of ``run_dir`` where given), loaded on first use.

    Raises:
        PredictorError: no such bundle or run folder, or no trained model (one line).
    """
    root = str(resolve_bundle(bundle))
    run = None if run_dir in (None, "") else str(Path(run_dir).expanduser().resolve())
    key = (root, run)
    with _LOCK:  # two browser tabs asking at once load the model once
        if key not in _PREDICTORS:
            _PREDICTORS[key] = BundlePredictor(root, run_dir=run)
        return _PREDICTORS[key]


def trained_bundles(bundles_dir: str | os.PathLike = BUNDLES) -> list[str]:
    """The names of the bundles in ``bundles_dir`` that ship a trained model (``models/model.pt``)."""
    return shipped_bundles(bundles_dir)


def demo_images(bundle_root: str | os.PathLike) -> dict[str, Path]:
    """Example images a user may pick instead of uploading: ``{label: path}``.

    The files of ``<bundle>/docs/demo_images/`` where the bundle ships some, and the real chest radiograph
    ``RG1_UNCR.dcm`` of ``pydicom-data`` (CR, MONOCHROME1) where that package is installed.
    """
    images = {f"{p.name} ({Path(bundle_root).name} demo image)": p
              for p in sorted((Path(bundle_root) / "docs" / "demo_images").glob("*")) if p.is_file()}
    try:
        from pydicom.data import get_testdata_file

        film = get_testdata_file("RG1_UNCR.dcm")
    except Exception:  # pydicom-data absent, or its cache unreadable: no such example
        film = None
    if film:
        images["RG1_UNCR.dcm (chest radiograph, DICOM, pydicom-data)"] = Path(film)
    return images
