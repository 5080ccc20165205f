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
SMOKE = ("--epochs", "2", "--batch_size", "8", "--spatial_size", "[32, 32]", "--network_def#features", "[8, 16, 16, 32, 32]")
# commands that run a bundle (or work on its outputs) in a subprocess: seconds to minutes each, so a test that starts
# one, itself or through a fixture such as ``trained``, must be marked ``slow`` (checked below, see _require_slow)
BUNDLE_COMMANDS = ("monai.bundle", "medbundle.explain", "medbundle.compare")
_RUNNING: dict[str, Any] = {"item": None}  # the test being set up, run or torn down


def pytest_configure(config):
    """Check every subprocess the tests start (see :func:`_require_slow`); one torch thread in this process.

    The tests' tensors are tiny: one intra-op thread is as fast, and immune to the OpenMP spin-waits that make two
    threads 3-40x slower per test on a loaded 2-core machine. ``OMP_NUM_THREADS`` set by the user wins; the bundle
    subprocesses are not affected.
    """
    subprocess.Popen = _CheckedPopen
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(1)


def pytest_unconfigure(config):
    subprocess.Popen = _POPEN


def pytest_collection_modifyitems(config, items):
    """Skip the ``realdata`` tests, saying why, where ``../shared/data`` is absent."""
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"realdata: {SHARED_DATA} not found (the real data sets live there)")
    for item in items:
        if item.get_closest_marker("realdata"):
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Remember the test before its fixtures are set up (session fixtures such as ``trained`` start there)."""
    _RUNNING["item"] = item


def pytest_runtest_logfinish(nodeid, location):
    _RUNNING["item"] = None


def _require_slow(args: Any) -> None:
    """Fail the running test if ``args`` runs one of :data:`BUNDLE_COMMANDS` and the test is not marked ``slow``.

    Keeps ``python -m pytest -m "not slow"`` fast for good: an unmarked test that starts a bundle fails at once
    with this message instead of quietly adding minutes to the fast lane.
    """
    argv = args.split() if isinstance(args, (str, bytes)) else [str(a) for a in args]
    argv = [a.decode() if isinstance(a, bytes) else a for a in argv]
    command = next((c for c in BUNDLE_COMMANDS if c in argv), None)
    item = _RUNNING["item"]
    if command is None or item is None or item.get_closest_marker("slow") is not None:
        return
    pytest.fail(f"{item.nodeid} runs `python -m {command}` in a subprocess (itself or through a fixture such as "
                "`trained`) but is not marked @pytest.mark.slow: mark it, so that `pytest -m 'not slow'` stays fast",
                pytrace=False)


_POPEN = subprocess.Popen


class _CheckedPopen(_POPEN):
    """``subprocess.Popen`` that first applies :func:`_require_slow` (installed while pytest runs)."""

    def __init__(self, args, *posargs, **kwargs):
        _require_slow(args)
        super().__init__(args, *posargs, **kwargs)


def bundle_config(task: str, *names: str) -> str:
    """The ``--config_file`` value for ``names`` (``"train"``, ``"evaluate"``, ...) of bundle ``task``.

    Names containing a ``/`` are taken relative to the repository root (top-level overlays).
    """
    files = [str(REPO / n) if "/" in n else str(BUNDLES / task / "configs" / f"{n}.json") for n in names]
    return files[0] if len(files) == 1 else "[" + ",".join(repr(f) for f in files) + "]"


def run_bundle(config_file: str, *args: str, cwd: Path | None = None, timeout: int = 600, check: bool = True,
               launcher: list[str] | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m monai.bundle run --config_file ... <args>`` in a subprocess, as a user types it.

    Only from tests marked ``slow`` (or their fixtures): anything else fails with a message saying so.
    """
    cmd = (launcher or [sys.executable]) + ["-m", "monai.bundle", "run", "--config_file", config_file, *args]
    _require_slow(cmd)
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
