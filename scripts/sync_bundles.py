"""Copy the shared files into every bundle, so that each bundle folder works alone (no symlinks).

The sources live once: ``configs/evaluate.json``, ``configs/explain.json``, ``configs/multi_process.json``
(a bundle's ``multi_gpu_train.json``), ``configs/logging.conf`` and the top-level ``LICENSE``. After editing one of
them, run ``python scripts/sync_bundles.py``; ``tests/test_bundle_layout.py`` fails while a copy differs.

Usage: ``python scripts/sync_bundles.py [--check]`` (``--check``: only report drifted copies, exit 1 if any).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# bundle-relative path -> source, relative to the repository root
SHARED_FILES = {
    "configs/evaluate.json": "configs/evaluate.json",
    "configs/explain.json": "configs/explain.json",
    "configs/multi_gpu_train.json": "configs/multi_process.json",
    "configs/logging.conf": "configs/logging.conf",
    "LICENSE": "LICENSE",
}


def bundles(repo: Path = REPO) -> list[Path]:
    """Every bundle folder (a folder of ``bundles/`` with ``configs/train.json``)."""
    return sorted(p.parent.parent for p in (repo / "bundles").glob("*/configs/train.json"))


def drifted(repo: Path = REPO) -> list[str]:
    """The bundle copies that are missing, links, or differ from their source."""
    out = []
    for bundle in bundles(repo):
        for rel, src in SHARED_FILES.items():
            copy = bundle / rel
            if copy.is_symlink() or not copy.is_file() or copy.read_bytes() != (repo / src).read_bytes():
                out.append(f"{copy.relative_to(repo)} (source {src})")
    return out


def sync(repo: Path = REPO) -> list[str]:
    """Write every drifted copy from its source; the list of files written."""
    written = drifted(repo)
    for bundle in bundles(repo):
        for rel, src in SHARED_FILES.items():
            copy = bundle / rel
            if copy.is_symlink():
                copy.unlink()
            if not copy.is_file() or copy.read_bytes() != (repo / src).read_bytes():
                tmp = copy.with_name(f".{copy.name}.tmp")
                shutil.copyfile(repo / src, tmp)
                tmp.replace(copy)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drifted copies (exit 1 if any)")
    args = parser.parse_args(argv)
    files = drifted() if args.check else sync()
    for f in files:
        print(("drifted: " if args.check else "written: ") + f)
    return 1 if args.check and files else 0


if __name__ == "__main__":
    sys.exit(main())
