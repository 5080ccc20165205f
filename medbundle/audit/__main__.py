"""Command line of the data audit: ``python -m medbundle.audit DIR [DIR ...] [--output_dir OUT]`` (see ``--help``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from medbundle.audit import __doc__ as _DOC
from medbundle.audit.alignment import MIN_DETAIL, MIN_RAW
from medbundle.audit.duplicates import CROP_NEIGHBOURS, MAX_COARSE_DISTANCE, MAX_DISTANCE, SURE_DISTANCE
from medbundle.audit.pipeline import audit
from medbundle.runs import medbundle_home


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medbundle.audit", description=_DOC.replace("``", "`"),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="+", metavar="DIR", help="data folders, one per source")
    p.add_argument("--output_dir", default=str(medbundle_home() / "audit"),
                   help="where to write the report (default: %(default)s)")
    p.add_argument("--max_distance", type=int, default=MAX_DISTANCE,
                   help="most bits (of 256) between the perceptual hashes of a near duplicate, beyond --sure_distance "
                        "only when the aligned thumbnails agree (default: %(default)s)")
    p.add_argument("--sure_distance", type=int, default=SURE_DISTANCE,
                   help="most bits between the hashes of a near duplicate taken without the aligned check; copies "
                        "resized or re-encoded lie 0-15 bits apart, lookalike radiographs 24 or more (default: "
                        "%(default)s)")
    p.add_argument("--crop_neighbours", type=int, default=CROP_NEIGHBOURS,
                   help="nearest images by coarse hash checked for a trimmed copy; 0: none (default: %(default)s)")
    p.add_argument("--max_coarse_distance", type=int, default=MAX_COARSE_DISTANCE,
                   help="most bits (of 128) between the coarse hashes of a pair checked (default: %(default)s)")
    p.add_argument("--min_raw", type=float, default=MIN_RAW,
                   help="least correlation of an aligned trimmed copy (default: %(default)s)")
    p.add_argument("--min_detail", type=float, default=MIN_DETAIL,
                   help="least high-pass correlation of an aligned trimmed copy (default: %(default)s)")
    p.add_argument("--pages", type=int, default=4, help="most pages of duplicate pictures (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, help="threads (default: one per CPU)")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    try:
        summary = audit(args.dirs, args.output_dir, max_distance=args.max_distance, sure_distance=args.sure_distance,
                        crop_neighbours=args.crop_neighbours, max_coarse_distance=args.max_coarse_distance,
                        min_raw=args.min_raw, min_detail=args.min_detail, pages=args.pages, workers=args.workers,
                        progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as e:  # DataError is a ValueError
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(f"{summary['images']} images audited; report: {args.output_dir}/audit.md")
    for line in summary["findings"]:
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
