#!/usr/bin/env python
"""Time ``python -m medbundle.audit`` on real data sets and report what it finds.

What is measured
----------------
One :func:`medbundle.audit.audit` run over ``--dirs`` (default: the five shared data sets under
``../shared/data``: ``alzheimer_mri``, ``pneumonia_xray``, ``head_ct``, ``covid_xray``, ``covid_xray_external``;
about 14,000 images once the 7,456 COVID-QU-Ex masks are skipped), with ``--workers`` threads (default: one per CPU).
Reported: the wall time of the whole call (finding the files, reading and hashing every image, the duplicate search
and alignment, the confound checks and writing the report; not Python's start-up and imports), the seconds of its
stages, images per second, and the counts found: images per source, pairs by kind and relation, pictures shared
between groups of different sources or splits, flagged confound checks. The target is 20,000 images within 5 minutes
on 2 cores; reading grows with the number of images, the search with its square (a small share here).

Output
------
A Markdown summary on stdout and the figures as JSON in ``--out`` (default
``<system temp dir>/medbundle_benchmark_audit.json``); the audit's own report goes to ``--output_dir`` (default
``<system temp dir>/medbundle_benchmark_audit``), never inside the repository.

Example::

    python scripts/benchmark_audit.py                     # a few minutes on 2 cores
    python scripts/benchmark_audit.py --dirs ../shared/data/head_ct
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DEFAULT_DIRS = [SHARED / n for n in ("alzheimer_mri", "pneumonia_xray", "head_ct", "covid_xray", "covid_xray_external")]
DEFAULT_OUT = Path(tempfile.gettempdir()) / "medbundle_benchmark_audit.json"
DEFAULT_REPORT = Path(tempfile.gettempdir()) / "medbundle_benchmark_audit"
if str(REPO) not in sys.path[:1]:
    sys.path.insert(0, str(REPO))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dirs", type=Path, nargs="+", default=DEFAULT_DIRS, help="data folders, one per source")
    p.add_argument("--output_dir", type=Path, default=DEFAULT_REPORT, help="where the audit writes its report")
    p.add_argument("--workers", type=int, default=None, help="threads (default: one per CPU)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file of the figures")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        print(f"error: {', '.join(missing)}: no such folder. Pass --dirs with existing data folders.", file=sys.stderr)
        return 2
    from medbundle.audit import audit
    from medbundle.utils import atomic_write_json

    started = time.perf_counter()
    summary = audit(args.dirs, args.output_dir, workers=args.workers, progress=False)
    wall = time.perf_counter() - started
    cross = [r for r in summary["shared"] if r["group"].split("/")[0] != r["other"].split("/")[0]]
    result = {
        "dirs": [str(d) for d in args.dirs],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "images": summary["images"],
        "wall_seconds": round(wall, 1),
        "images_per_second": round(summary["images"] / wall, 1),
        "stage_seconds": summary["seconds"],
        "per_source": {s: v["images"] for s, v in summary["sources"].items()},
        "pairs_by_kind": summary["duplicates"]["pairs"],
        "pairs_by_relation": summary["duplicates"]["by_relation"],
        "shared_across_sources": cross,
        "flagged_checks": [c for c in summary["confound_checks"] if c["flagged"]],
        "report": str(args.output_dir / "audit.md"),
    }
    atomic_write_json(args.out, result)
    print(f"## Audit benchmark ({result['cpus']} CPUs)\n")
    print(f"- {result['images']} images in {wall:.1f} s ({result['images_per_second']} images/s); stages: "
          f"{summary['seconds']}")
    print(f"- images per source: {result['per_source']}")
    print(f"- pairs by kind: {result['pairs_by_kind']}; by relation: {result['pairs_by_relation']}")
    for r in cross:
        print(f"- {r['images']} of {r['of']} images of {r['group']} also in {r['other']}")
    for c in result["flagged_checks"]:
        print(f"- flagged: {c['features']} predict the {c['predicts']} ({c['source']}): "
              f"{c['balanced_accuracy']:.2f} vs chance {c['chance']:.2f}, most telling {c['most_telling']}")
    print(f"\nReport: {result['report']}; figures: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
