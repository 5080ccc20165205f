"""Layout 1: ``Train.mat`` / ``Val.mat`` / ``Test.mat`` image stacks (see :func:`medbundle.data.matfile.read_mat`),
with optional ``<Split>_mask.mat`` masks beside them."""

from __future__ import annotations

from pathlib import Path

from medbundle.data.errors import DataError
from medbundle.data.files import _norm, _scan
from medbundle.data.matfile import read_mat
from medbundle.data.splits import _SPLIT_NAMES

__all__: list[str] = []


def _mat_splits(files: list[Path]) -> dict[str, Path]:
    """``Train.mat``-style files by split (mask files ``*_mask.mat`` never match)."""
    found: dict[str, Path] = {}
    for f in files:
        split = _SPLIT_NAMES.get(_norm(f.stem)) if f.suffix.lower() == ".mat" else None
        if split in found:
            raise DataError(f"{f.parent}: both {found[split].name} and {f.name} hold the '{split}' split. Keep one.")
        if split:
            found[split] = f
    return found


def _from_mat(folder: Path, root: Path, num_classes: int, data_key: str, label_key: str) -> dict[str, list[dict]]:
    """Items of the ``Train.mat``-style files in ``folder``, with masks from ``<Split>_mask.mat`` when present."""
    splits = {}
    for split, path in _mat_splits(_scan(folder)[0]).items():
        images, labels = read_mat(path, data_key, label_key, num_classes=num_classes)
        rel = path.relative_to(root).as_posix()
        splits[split] = [{"image": f"{path}#{i}", "label": int(y), "id": f"{rel}#{i}"} for i, y in enumerate(labels)]
        _add_masks(splits[split], path, images.shape)
    return splits


def _add_masks(items: list[dict], path: Path, shape: tuple[int, ...]) -> None:
    """Give each item of ``path`` (a ``.mat`` file) its ``"mask"`` slice from ``<stem>_mask.mat`` beside it, if any."""
    mask = next((p for p in path.parent.iterdir() if p.name.lower() == f"{path.stem.lower()}_mask.mat"), None)
    if mask is None:
        return
    masks, _ = read_mat(mask, "mask", None, require_labels=False)
    if masks.shape != shape:
        raise DataError(
            f"{mask}: masks of shape {masks.shape} do not match the images of {path.name} {shape}. "
            "Give one mask of the image size per image, or remove the mask file."
        )
    for i, item in enumerate(items):
        item["mask"] = f"{mask}#{i}"
