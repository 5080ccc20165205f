"""The demo's settings: one parser for ``python -m medbundle.demo`` and for the page script that Streamlit runs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DemoSettings", "parse_settings", "DEFAULT_MAX_UPLOAD_MB"]

#: the largest upload accepted by default, in megabytes (Streamlit's ``server.maxUploadSize``).
DEFAULT_MAX_UPLOAD_MB = 50


@dataclass(frozen=True)
class DemoSettings:
    """What the demo serves and where.

    Args:
        bundle: the bundle shown first (a bundle name or folder).
        run_dir: a run folder of ``train.json`` whose model is served for ``bundle``; None: the shipped model.
        host: the address the server listens on (``127.0.0.1``: this machine only).
        port: the TCP port.
        max_upload_mb: the largest file a user may upload, in megabytes (whole megabytes, at least 1).
        threads: torch intra-op threads for the model. 1 by default: on a 2-core machine that also runs other work
            (training), two threads spin against each other and one answers several times faster; raise it on an
            idle many-core machine.
    """

    bundle: str = "pneumonia_xray"
    run_dir: str | None = None
    host: str = "127.0.0.1"
    port: int = 8501
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB
    threads: int = 1

    def as_args(self) -> list[str]:
        """The command-line arguments that :func:`parse_settings` reads back into these settings."""
        args = ["--bundle", self.bundle, "--host", self.host, "--port", str(self.port),
                "--max_upload_mb", str(self.max_upload_mb), "--threads", str(self.threads)]
        return args + (["--run_dir", self.run_dir] if self.run_dir else [])


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is above 65535")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m medbundle.demo`` argument parser (argparse: a bad value is one line and exit code 2)."""
    parser = argparse.ArgumentParser(
        prog="python -m medbundle.demo",
        description="Web demo of a bundle's trained model: upload a PNG, JPEG or DICOM image, see the class "
                    "probabilities, the conformal prediction set, Grad-CAM and the model card. Research only.")
    parser.add_argument("--bundle", default=DemoSettings.bundle,
                        help="bundle name or folder shown first (default: %(default)s)")
    parser.add_argument("--run_dir", default=None,
                        help="a train.json run folder whose models/model.pt to serve for --bundle "
                             "(default: the model shipped in the bundle)")
    parser.add_argument("--host", default=DemoSettings.host,
                        help="address to listen on (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=_port, default=DemoSettings.port, help="TCP port (default: %(default)s)")
    parser.add_argument("--max_upload_mb", type=_positive_int, default=DEFAULT_MAX_UPLOAD_MB,
                        help="largest upload in megabytes (default: %(default)s)")
    parser.add_argument("--threads", type=_positive_int, default=DemoSettings.threads,
                        help="torch threads for the model (default: %(default)s, fastest on a busy machine)")
    return parser


def parse_settings(argv: Sequence[str] | None = None) -> DemoSettings:
    """The settings in ``argv`` (``sys.argv[1:]`` when None); argparse exits with one line on a bad value."""
    ns = build_parser().parse_args(argv)
    return DemoSettings(bundle=ns.bundle, run_dir=ns.run_dir, host=ns.host, port=ns.port,
                        max_upload_mb=ns.max_upload_mb, threads=ns.threads)
