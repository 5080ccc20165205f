"""Start the medbundle MONAI Label server: ``python -m medbundle.serving.label_app --studies <folder or DICOMweb URL>``.

MONAI Label's ``start_server`` with medbundle's defaults: it binds to ``127.0.0.1`` (``--host 0.0.0.0`` to listen
on every interface), and the app folder it writes into (``logs/``, ``model/``, ``bin/``) is
``$MEDBUNDLE_HOME/label_app`` (a two-line ``main.py`` importing :class:`MedBundleApp`), never the source tree.
Bundles are checked before the server starts: a bundle without a trained model is one line, exit status 2.

Examples::

    python -m medbundle.serving.label_app --studies ~/xrays --port 8000
    python -m medbundle.serving.label_app --studies http://127.0.0.1:8042/dicom-web --conf bundles pneumonia_xray
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

_MAIN = '"""medbundle MONAI Label app (written by python -m medbundle.serving.label_app)."""\n' \
        "from medbundle.serving.label_app.main import MedBundleApp  # noqa: F401\n"


def app_dir(home: Path | None = None) -> Path:
    """The app folder MONAI Label runs from: ``<medbundle home>/label_app`` with a ``main.py`` importing the app."""
    from medbundle.runs.bundle import medbundle_home

    folder = (home or medbundle_home()) / "label_app"
    folder.mkdir(parents=True, exist_ok=True)
    main = folder / "main.py"
    if not main.is_file() or main.read_text(encoding="utf-8") != _MAIN:
        tmp = main.with_suffix(".tmp")
        tmp.write_text(_MAIN, encoding="utf-8")
        os.replace(tmp, main)
    return folder


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medbundle.serving.label_app", description=__doc__.splitlines()[0])
    p.add_argument("--studies", "-s", required=True, help="a folder of PNG/JPEG/DICOM files, or a DICOMweb URL")
    p.add_argument("--host", "-i", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", "-p", default=8000, type=int)
    p.add_argument("--conf", "-c", nargs=2, action="append", metavar=("KEY", "VALUE"), default=[],
                   help="app settings: bundles, device, max_upload_mb, dicomweb_modalities")
    p.add_argument("--log_level", default="info")
    return p


def _check_bundles(conf: dict[str, str]) -> None:
    from medbundle.serving import PredictorError
    from medbundle.serving.label_app.main import served_bundles
    from medbundle.serving.predictor import resolve_bundle

    bundles = served_bundles(conf.get("bundles"))
    if not bundles:
        raise PredictorError("no bundle ships a trained model: pass --conf bundles <name>=<run folder>.")
    for name, run_dir in bundles.items():
        root = resolve_bundle(name)
        model = Path(run_dir).expanduser() / "models" / "model.pt" if run_dir else root / "models" / "model.pt"
        if not model.is_file():
            raise PredictorError(f"{name}: no trained model at {model}. Train the bundle and pass "
                                 f"--conf bundles {name}=<its --output_dir>, or serve another bundle.")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    conf = {k: v for k, v in args.conf}
    try:
        import monailabel.main  # noqa: F401
    except ImportError as e:
        print(f"error: MONAI Label is not installed in this python ({e.name}). Build its environment with "
              f"`bash scripts/label_env.sh` and run its python.", file=sys.stderr)
        return 2
    from medbundle.serving import PredictorError

    try:
        _check_bundles(conf)
    except PredictorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    studies = args.studies
    if not studies.startswith(("http://", "https://")) and not Path(studies).expanduser().is_dir():
        print(f"error: --studies {studies}: no such folder. Pass a folder of images or a DICOMweb URL "
              f"(http://host:port/dicom-web).", file=sys.stderr)
        return 2
    from monailabel.main import Main

    argv = ["monailabel", "start_server", "--app", str(app_dir()), "--studies", str(Path(studies).expanduser())
            if not studies.startswith(("http://", "https://")) else studies, "--host", args.host, "--port",
            str(args.port), "--log_level", args.log_level]
    for k, v in conf.items():
        argv += ["--conf", k, v]
    sys.argv = argv
    Main().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
