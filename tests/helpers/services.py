"""Services the serving tests start on free loopback ports: the MONAI Label server (label env) and Orthanc.

Each service gets its own files in a temporary folder and is stopped when the module that used it ends. A service that
is not installed skips its tests, saying how to install it; with ``MEDBUNDLE_REQUIRE_SERVICES`` set (CI) it fails
them instead. Import the fixtures into a test module: ``from helpers.services import label_python, orthanc,
start_label_server  # noqa: F401``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import REPO

from medbundle.demo.browser import free_port

__all__ = ["LABEL_PYTHON", "LabelServer", "Orthanc", "free_port", "label_python", "missing", "orthanc",
           "start_label_server"]

LABEL_ENV = Path(os.environ.get("MEDBUNDLE_LABEL_ENV", Path.home() / ".cache" / "medbundle" / "label-venv"))
LABEL_PYTHON = LABEL_ENV / "bin" / "python"
ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def missing(reason: str) -> None:
    """Skip (fail under ``MEDBUNDLE_REQUIRE_SERVICES``) a test whose service is not installed."""
    if os.environ.get("MEDBUNDLE_REQUIRE_SERVICES"):
        pytest.fail(f"{reason} (MEDBUNDLE_REQUIRE_SERVICES is set: the service must be installed)", pytrace=False)
    pytest.skip(reason)


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url}: not up after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def label_python() -> Path:
    """The python of the MONAI Label environment (``bash scripts/label_env.sh``)."""
    if not LABEL_PYTHON.is_file():
        missing(f"label env: no {LABEL_PYTHON}; build it with `bash scripts/label_env.sh`")
    check = subprocess.run([str(LABEL_PYTHON), "-c", "import monailabel, medbundle"], capture_output=True, text=True)
    if check.returncode != 0:
        missing(f"label env {LABEL_ENV}: cannot import monailabel/medbundle; rebuild it with "
                f"`bash scripts/label_env.sh` ({check.stderr.strip().splitlines()[-1:]})")
    return LABEL_PYTHON


class Orthanc:
    """A running Orthanc: ``url`` (REST), ``dicomweb`` (``<url>/dicom-web``), :meth:`upload`."""

    def __init__(self, url: str, proc: subprocess.Popen):
        self.url, self.proc = url, proc
        self.dicomweb = f"{url}/dicom-web"

    def upload(self, path: str | os.PathLike) -> str:
        """Store one DICOM file; returns its SeriesInstanceUID (the MONAI Label image id)."""
        import pydicom

        r = requests.post(f"{self.url}/instances", data=Path(path).read_bytes(), timeout=30)
        r.raise_for_status()
        return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory) -> Iterator[Orthanc]:
    """Orthanc with its DICOMweb plugin on a free loopback port; storage and config in a temporary folder."""
    if not Path(ORTHANC).is_file() or not DICOMWEB_PLUGIN.is_file():
        missing("orthanc: Orthanc or its DICOMweb plugin is not installed; "
                "`apt-get install -y orthanc orthanc-dicomweb` (as root)")
    home = tmp_path_factory.mktemp("orthanc")
    port = free_port()
    config = {"Name": "medbundle-test", "StorageDirectory": str(home / "db"), "IndexDirectory": str(home / "db"),
              "HttpPort": port, "DicomServerEnabled": False, "DicomPort": free_port(), "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "Plugins": [str(DICOMWEB_PLUGIN)],
              "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "HttpThreadsCount": 8, "ConcurrentJobs": 1}
    (home / "orthanc.json").write_text(json.dumps(config))
    log = home / "orthanc.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([ORTHANC, str(home / "orthanc.json")], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/system", proc, log, 60)
        yield Orthanc(url, proc)
    finally:
        _stop(proc)


class LabelServer:
    """A running medbundle MONAI Label server: ``url``, ``pid``, ``log``."""

    def __init__(self, url: str, proc: subprocess.Popen, log: Path):
        self.url, self.proc, self.log = url, proc, log
        self.pid = proc.pid


@pytest.fixture(scope="module")
def start_label_server(label_python, tmp_path_factory) -> Iterator:
    """``start(studies, **conf) -> LabelServer``: the launcher in the label env on a free loopback port."""
    started: list[subprocess.Popen] = []

    def start(studies: str | os.PathLike, **conf: str) -> LabelServer:
        home = tmp_path_factory.mktemp("label_home")
        port = free_port()
        cmd = [str(label_python), "-m", "medbundle.serving.label_app", "--studies", str(studies), "--port", str(port),
               "--log_level", "warning"]
        for k, v in conf.items():
            cmd += ["--conf", k, str(v)]
        env = {**os.environ, "MEDBUNDLE_HOME": str(home), "MONAI_LABEL_DICOMWEB_CACHE_PATH": str(home / "dicom"),
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "PYTHONUNBUFFERED": "1",
               # two malloc arenas: the server's RSS then follows what it holds, not how many per-thread arenas
               # glibc happened to open during a load test (+/- 100 MB between identical runs otherwise)
               "MALLOC_ARENA_MAX": "2"}
        log = home / "server.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        _wait(f"{url}/info/", proc, log, 180)
        return LabelServer(url, proc, log)

    yield start
    for proc in started:
        _stop(proc)
