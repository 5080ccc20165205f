"""Finding the layout of a dataset folder: the topmost folder at or below it (breadth first) that shows one of the
layouts of :mod:`medbundle.data.layouts`, so nested duplicate copies of the tree are ignored."""

from __future__ import annotations

from pathlib import Path

from medbundle.data.errors import DataError
from medbundle.data.files import IMAGE_SUFFIXES, _first_visit, _norm, _scan
from medbundle.data.layouts.datalist import _DATALIST_FILES
from medbundle.data.layouts.mat import _mat_splits
from medbundle.data.splits import _SPLIT_NAMES

__all__: list[str] = []


def _layout_of(folder: Path, class_keys: dict[str, int], table_file: str | None = None) -> str | None:
    """The layout ``folder`` shows directly, if any; a folder holding ``table_file`` (when given: a ``label_column``
    is set) shows the metadata table layout, whatever else it holds."""
    files, dirs = _scan(folder)
    if table_file and any(f.name.lower() == table_file.lower() for f in files):
        return "table"
    if any(f.name.lower() in _DATALIST_FILES for f in files):
        return "datalist"
    if _mat_splits(files):
        return ".mat"
    if any(f.name.lower().endswith(".parquet") for f in files):
        return "parquet"
    if any(_norm(d.name) in _SPLIT_NAMES for d in dirs):
        return "split folders"
    if any(_norm(d.name) in class_keys for d in dirs):
        return "class folders"
    return None


def _find_layout(
    root: Path,
    class_keys: dict[str, int],
    data_key: str,
    label_key: str,
    class_names: list[str],
    table_file: str | None = None,
) -> tuple[Path, str]:
    """The topmost folder at or below ``root`` that shows a layout (breadth first), and that layout.

    Args:
        table_file: the metadata table's file name when a label column is given (the table layout), else None.
    """
    queue, seen = [root], set()
    _first_visit(root, seen)
    while queue:
        folder = queue.pop(0)
        layout = _layout_of(folder, class_keys, table_file)
        if layout:
            return folder, layout
        queue += [d for d in _scan(folder)[1] if _first_visit(d, seen)]  # links to folders seen: skipped
    found = sorted(p.name for p in root.iterdir())[:10]
    table = f"; (5) the metadata table {table_file} (one row per image, see label_column)" if table_file else ""
    raise DataError(
        f"{root}: no data found (top-level entries: {found}). Accepted layouts: (1) Train.mat with optional Val.mat "
        f"and Test.mat, each holding variables '{data_key}' and '{label_key}'; (2) one folder per class named "
        f"{class_names} holding images ({', '.join(IMAGE_SUFFIXES)}), optionally inside train/val/test folders; "
        "(3) datalist.csv (columns image,label[,split][,group][,mask]) or datalist.json (MONAI style); (4) "
        f"parquet files in the Hugging Face image schema (train-*.parquet, test-*.parquet){table}. Arrange the data in "
        "one of these layouts, or point --dataset_dir at it."
    )
