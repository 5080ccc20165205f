"""A bundle folder copied alone (as MONAI Label or a zip would carry it) trains, evaluates and infers."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from conftest import REPO, run_bundle

sys.path.insert(0, str(REPO / "scripts"))
import sync_bundles  # noqa: E402

BUNDLES = [p.name for p in sync_bundles.bundles()]
QUICK = ("--epochs", "1", "--batch_size", "8", "--spatial_size", "[32, 32]")


@pytest.mark.slow
@pytest.mark.parametrize("bundle", BUNDLES)
def test_bundle_copied_alone_runs(bundle, tmp_path):
    alone = tmp_path / "elsewhere" / bundle
    shutil.copytree(REPO / "bundles" / bundle, alone, symlinks=True)
    assert not [p for p in alone.rglob("*") if p.is_symlink()]
    configs = alone / "configs"
    out = tmp_path / "run"
    data = tmp_path / "medbundle_home" / "data" / bundle  # the demo data, made by the first run (see conftest)

    def files(*names: str) -> str:
        paths = [str(configs / f"{n}.json") for n in names]
        return paths[0] if len(paths) == 1 else "[" + ",".join(repr(p) for p in paths) + "]"

    common = ("--output_dir", str(out))
    run_bundle(files("train"), *common, *QUICK, cwd=tmp_path)
    assert (out / "models" / "model.pt").is_file()
    run = json.loads((out / "run.json").read_text())
    assert all(str(alone) in f for f in run["config_file"]), "the run must read the copied bundle's configs"

    run_bundle(files("train", "evaluate"), *common, *QUICK, cwd=tmp_path)
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["n"] > 0

    assert data.is_dir()
    # the inference config's own default input: the demo test images
    run_bundle(files("inference"), "--output_dir", str(out), "--dataset_dir", str(data), "--spatial_size", "[32, 32]",
               cwd=tmp_path)
    assert (out / "inference" / "predictions.csv").is_file()
