"""The audit's files, all written atomically: ``audit.md`` (findings first), ``summary.json``, ``images.csv`` (one
row per image), ``duplicates.csv`` (one row per pair), ``confounds.csv`` (per source and class),
``confound_checks.csv`` (the trivial classifiers) and ``duplicate_pairs_<n>.png``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from medbundle.audit.confounds import FLAG_MARGIN
from medbundle.audit.figures import write_pair_pages
from medbundle.utils import atomic_write, atomic_write_json

__all__ = ["write_report", "findings"]


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    columns = list(columns or frame.columns)
    if frame.empty:
        return "(none)\n"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame[columns].itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_write(path, newline="", encoding="utf-8") as f:
        frame.to_csv(f, index=False)


def findings(images: pd.DataFrame, duplicates: pd.DataFrame, shared: pd.DataFrame, checks: pd.DataFrame) -> list[str]:
    """The problems found, one line each: pictures shared across sources or splits, repeated pictures within a
    split, unreadable images, and flagged confound checks."""
    lines = []
    source_of = dict(zip(images["group"], images["source"]))
    split_of = dict(zip(images["group"], images["split"]))
    for row in shared.itertuples():
        if source_of[row.group] != source_of[row.other]:
            lines.append(f"{row.images} of {row.of} images of {row.group} are also in {row.other} (another source)")
        elif split_of[row.group] != split_of[row.other]:
            lines.append(f"{row.images} of {row.of} images of {row.group} are also in {row.other} (another split: a "
                         "leak)")
    within = duplicates[duplicates["relation"] == "within_split"]
    for source, g in within.groupby("source_a", sort=True):
        cross = int((~g["same_class"]).sum())
        lines.append(f"{source}: {len(g)} duplicate pair(s) within a split"
                     + (f", {cross} of them between two classes (conflicting labels)" if cross else ""))
    bad = images[images["error"].astype(str) != ""]
    if len(bad):
        lines.append(f"{len(bad)} image(s) cannot be read (see the error column of images.csv)")
    for row in checks[checks["flagged"]].itertuples():
        what = f"the class of {row.source}" if row.predicts == "class" else "the source"
        lines.append(f"{row.features} alone predict {what}: balanced accuracy {row.balanced_accuracy:.2f} against "
                     f"chance {row.chance:.2f} (most telling: {row.most_telling})")
    return lines


def write_report(output_dir: Path, dirs: Sequence[str], items, images: pd.DataFrame, duplicates: pd.DataFrame,
                 groups: pd.DataFrame, checks: pd.DataFrame, shared: pd.DataFrame, options: dict, seconds: dict,
                 pages: int) -> dict:
    """Write every file of the audit to ``output_dir``; the summary (as in ``summary.json``)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for old in output_dir.glob("duplicate_pairs_*.png"):
        old.unlink()
    pictures = write_pair_pages(duplicates, output_dir, pages) if len(duplicates) else []
    lines = findings(images, duplicates, shared, checks)
    sources = {}
    for folder, (source, g) in zip(dirs, images.groupby("source", sort=False)):
        sources[source] = {"folder": folder, "images": len(g), "unreadable": int((g["error"].astype(str) != "").sum()),
                           "mask_images_skipped": int(getattr(items, "skipped_masks", {}).get(source, 0)),
                           "classes": {str(k): int(v) for k, v in g["class"].value_counts(sort=False).items()},
                           "splits": {str(k): int(v) for k, v in g["split"].value_counts(sort=False).items()}}
    summary = {
        "sources": sources,
        "images": len(images),
        "duplicates": {
            "pairs": {str(k): int(v) for k, v in duplicates["kind"].value_counts().items()},
            "by_relation": {str(k): int(v) for k, v in duplicates["relation"].value_counts().items()},
            "clusters_with_duplicates": int((images["cluster"].value_counts() > 1).sum()),
            "images_in_them": int(images["cluster"].map(images["cluster"].value_counts()).gt(1).sum()),
        },
        "shared": shared.to_dict("records"),
        "confound_checks": checks.to_dict("records"),
        "findings": lines,
        "options": {**options, "flag_margin": FLAG_MARGIN},
        "pictures": pictures,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    _write_csv(output_dir / "images.csv", images)
    _write_csv(output_dir / "duplicates.csv", duplicates)
    _write_csv(output_dir / "confounds.csv", groups)
    _write_csv(output_dir / "confound_checks.csv", checks)
    atomic_write_json(output_dir / "summary.json", summary)
    with atomic_write(output_dir / "audit.md", encoding="utf-8") as f:
        f.write(_markdown_report(summary, duplicates, groups, checks, shared))
    return summary


def _markdown_report(summary: dict, duplicates: pd.DataFrame, groups: pd.DataFrame, checks: pd.DataFrame,
                     shared: pd.DataFrame) -> str:
    o = summary["options"]
    out = ["# Data audit\n"]
    out += ["## Findings\n"] + [f"- {line}" for line in summary["findings"] or ["nothing found"]] + [""]
    out += ["## Images\n", _markdown(pd.DataFrame([
        {"source": s, "folder": v["folder"], "images": v["images"], "unreadable": v["unreadable"],
         "masks skipped": v["mask_images_skipped"], "classes": ", ".join(f"{k or '(none)'} {n}" for k, n in
                                                                          v["classes"].items()),
         "splits": ", ".join(f"{k or '(none)'} {n}" for k, n in v["splits"].items())}
        for s, v in summary["sources"].items()]))]
    out += ["## Duplicates\n",
            "Pairs by kind (rows) and where the two images are (columns); every pair is in `duplicates.csv`, every "
            "image's cluster in `images.csv`.\n"]
    table = pd.crosstab(duplicates["kind"], duplicates["relation"]) if len(duplicates) else pd.DataFrame()
    out.append(_markdown(table.reset_index()) if len(table) else "(none)\n")
    out += ["\nPictures shared between groups (source/split/class): how many images of the first group share their "
            "picture with an image of the second.\n", _markdown(shared)]
    out += [f"\nPictures: {', '.join(f'`{p}`' for p in summary['pictures']) or '(none)'}.\n"]
    out += ["## Confounds\n",
            "Balanced accuracy of a depth-3 decision tree (stratified 5-fold cross-validation) on metadata alone "
            "(width, height, aspect, bit depth, channels, mode, format) or intensity statistics alone (mean, std, "
            f"percentiles); flagged at chance + {o['flag_margin']} or more.\n", _markdown(checks)]
    columns = ["source", "class", "images", "width_median", "width_min", "width_max", "height_median",
               "aspect_median", "bit_depth", "mode", "format", "file_size_median", "mean_median", "std_median"]
    out += ["\nPer source and class (medians; all columns in `confounds.csv`):\n",
            _markdown(groups, [c for c in columns if c in groups.columns])]
    out += ["## Method\n",
            f"- exact: the same file bytes (`exact_file`) or decoded pixels (`exact_pixels`), SHA-256;\n"
            f"- near: 256-bit DCT perceptual hashes at most {o['sure_distance']} bits apart, or at most "
            f"{o['max_distance']} and the aligned thumbnails alike (below);\n"
            f"- near_crop: each image's {o['crop_neighbours']} nearest by coarse hashes (at most "
            f"{o['max_coarse_distance']} of 128 bits apart) aligned over scales and shifts; aligned pairs kept at "
            f"correlation >= {o['min_raw']} and high-pass correlation >= {o['min_detail']};\n"
            "- groups of pictures are the connected components of all pairs (`cluster` in `images.csv`).\n",
            f"Seconds: {summary['seconds']}.\n"]
    return "\n".join(out)
