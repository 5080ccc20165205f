"""The medbundle MONAI Label app: every bundle with a trained model, served as a classification infer task.

Start it with the launcher (binds to 127.0.0.1, keeps MONAI Label's logs and caches out of the source tree)::

    python -m medbundle.serving.label_app --studies /data/xrays                      # a folder of PNG/JPEG/DICOM
    python -m medbundle.serving.label_app --studies http://127.0.0.1:8042/dicom-web  # a DICOMweb server

or with MONAI Label's own command (``--host 127.0.0.1``: its default listens on every interface)::

    monailabel start_server --app medbundle/serving/label_app --studies /data/xrays --host 127.0.0.1 \\
        --conf bundles pneumonia_xray

``--conf`` keys: ``bundles`` (comma-separated names, or ``name=run_dir`` to serve a run folder's model; default:
every bundle that ships ``models/model.pt``), ``device`` (``cpu``), ``max_upload_mb`` (32), ``infer_threads`` (2:
images decoded and classified at once, the rest wait; bounds memory), ``dicomweb_modalities`` (comma-separated,
default: all). See ``medbundle/serving/README.md``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from monailabel.interfaces.app import MONAILabelApp

from medbundle.serving import EXPLAIN_METHODS
from medbundle.serving.label_app.lib.datastores import dicomweb_datastore, local_datastore
from medbundle.serving.label_app.lib.infer import BundleClassifyTask
from medbundle.serving.predictor import shipped_bundles

logger = logging.getLogger("medbundle.serving.label")

__all__ = ["MedBundleApp", "served_bundles"]


def served_bundles(conf_value: str | None) -> dict[str, str | None]:
    """``{bundle: run_dir or None}`` from the ``bundles`` conf value; None: every bundle that ships a model."""
    if not conf_value:
        return {name: None for name in shipped_bundles()}
    out: dict[str, str | None] = {}
    for item in (s.strip() for s in conf_value.split(",")):
        if item:
            name, _, run_dir = item.partition("=")
            out[name.strip()] = run_dir.strip() or None
    return out


class MedBundleApp(MONAILabelApp):
    """MONAI Label app over medbundle's bundles (``--conf`` keys in the module docstring).

    Raises:
        PredictorError: a bundle named in ``bundles`` that does not exist or has no trained model (one line).
    """

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]):
        conf = dict(conf or {})
        self.bundles = served_bundles(conf.get("bundles"))
        self.device = conf.get("device", "cpu")
        self.max_upload_bytes = int(float(conf.get("max_upload_mb", 32)) * 2**20)
        self.infer_threads = int(conf.get("infer_threads", 2))
        modalities = [m.strip() for m in conf.get("dicomweb_modalities", "").split(",") if m.strip()]
        self.search_filter = {"Modality": "\\".join(modalities)} if modalities else {}
        self.explain_methods = EXPLAIN_METHODS
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="medbundle",
                         description="Interpretable 2D medical image classification (research and education only, "
                                     "not for clinical use)",
                         version="0.1.0")
        try:
            from monailabel.app import app as fastapi_app
        except ImportError:  # the app used outside MONAI Label's server (tests, scripts)
            return
        from medbundle.serving.label_app.lib.routes import install_infer_route

        install_infer_route(self, fastapi_app, self.max_upload_bytes, self.infer_threads)

    def init_datastore(self):
        if self.studies.startswith(("http://", "https://")):
            self.studies = self.studies.rstrip("/").strip()
            return dicomweb_datastore(self.studies, self.search_filter)
        return local_datastore(self.studies)

    def init_infers(self) -> dict[str, BundleClassifyTask]:
        tasks = {}
        for name, run_dir in self.bundles.items():
            tasks[Path(name).name] = BundleClassifyTask(name, run_dir=run_dir, device=self.device)
        logger.info("serving %s", ", ".join(f"{k} ({v.predictor.model_path})" for k, v in tasks.items()))
        return tasks

    def init_strategies(self) -> dict[str, Any]:
        return {}

    def info(self) -> dict[str, Any]:
        meta = super().info()
        meta["disclaimer"] = "Research and education only, not for clinical use."
        return meta
