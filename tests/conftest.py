"""Shared fixtures: the repository layout, small demo data, and running bundle commands as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
SHARED_DATA = REPO.parent / "shared" / "data"
# a tiny network at 32 px: the bundle's whole path in seconds
SMOKE = ("--epochs", "2", "--batch_size", "8", "--spatial_size", "[32, 32]", "--features", "[8, 16, 16, 32, 32]")


def bundle_config(task: str, *names: str) -> str:
    """The ``--config_file`` value for ``names`` (``"train"``, ``"evaluate"``, ...) of bundle ``task``.

    Names containing a ``/`` are taken relative to the repository root (top-level overlays).
    """
    files = [str(REPO / n) if "/" in n else str(BUNDLES / task / "configs" / f"{n}.json") for n in names]
    return files[0] if len(files) == 1 else "[" + ",".join(repr(f) for f in files) + "]"


def run_bundle(config_file: str, *args: str, cwd: Path | None = None, timeout: int = 600, check: bool = True,
               launcher: list[str] | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m monai.bundle run --config_file ... <args>`` in a subprocess, as a user types it."""
    cmd = (launcher or [sys.executable]) + ["-m", "monai.bundle", "run", "--config_file", config_file, *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def export_pngs(mat_file: Path, folder: Path, n: int, prefix: str = "slice") -> tuple[Path, Any]:
    """Write the first ``n`` images of a ``.mat`` file as 8-bit PNGs ``<prefix><i>.png``; the folder and all images."""
    import numpy as np
    from PIL import Image

    from medbundle.data import read_mat

    images, _ = read_mat(mat_file)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(images[i].astype(np.uint8)).save(folder / f"{prefix}{i}.png")
    return folder, images


@pytest.fixture(scope="session")
def ct_demo_dir(tmp_path_factory) -> Path:
    """A small synthetic brain-CT set in the seed's .mat format (shared by the bundle tests)."""
    from medbundle.data import make_ct_demo

    return make_ct_demo(tmp_path_factory.mktemp("ct_demo"), n_train=48, n_val=24, n_test=24, size=64, seed=1)


@pytest.fixture(scope="session")
def trained(ct_demo_dir, tmp_path_factory) -> Path:
    """One short training run of ct_infection on the small demo set; its output folder."""
    out = tmp_path_factory.mktemp("ct_run")
    run_bundle(bundle_config("ct_infection", "train", "configs/smoke.json"), "--dataset_dir", str(ct_demo_dir),
               "--output_dir", str(out), *SMOKE, cwd=out)
    return out


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Keep every default output of the code under test inside the test's temporary folder."""
    monkeypatch.setenv("MEDBUNDLE_HOME", str(tmp_path / "medbundle_home"))
