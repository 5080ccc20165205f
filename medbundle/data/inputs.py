"""The inputs of an inference: a folder, one image file, a ``.mat`` stack or a datalist file, as datalist items."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from medbundle.data.errors import DataError
from medbundle.data.files import IMAGE_SUFFIXES, _find_images, _is_image, _is_resource_fork, _log_macos_leftovers, _norm
from medbundle.data.layouts.datalist import _DATALIST_FILES, _from_datalist
from medbundle.data.layouts.folders import _with_masks
from medbundle.data.layouts.mat import _add_masks
from medbundle.data.matfile import read_mat

__all__ = ["list_inputs"]

def list_inputs(
    input_path: str | os.PathLike,
    data_key: str = "data",
    label_key: str = "label",
    class_names: Sequence[str] | None = None,
) -> list[dict]:
    """Items ``{"image", "id"}`` to run inference on (plus ``"label"`` and ``"mask"`` where a ``.mat`` file has them).

    Args:
        input_path: a folder of images (searched recursively), one image file (PNG, JPEG, BMP, TIFF, DICOM with or
            without ``.dcm``, NIfTI), a ``.mat`` file (all its images; its labels when it has them, and
            its masks from ``<stem>_mask.mat`` beside it, as in the demo data), or a ``datalist.csv`` /
            ``datalist.json`` (all its entries, every split, with their labels, groups and masks).
        data_key: image variable of a ``.mat`` file.
        label_key: label variable of a ``.mat`` file (optional in the file).
        class_names: the classes, to read the class-name labels of a datalist file as indices.

    Returns:
        the items, sorted by path; ids are paths relative to the folder, file names, or ``"<file>.mat#<index>"``.

    Raises:
        DataError: when the path does not exist, is not a supported file, or holds no images.
    """
    path = Path(input_path).expanduser().resolve()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder. Check the path given as --input_path.")
    if path.is_dir():
        # masks below mask folders (COVID-QU-Ex's "lung masks", "infection masks") are not inputs: they go with
        # their images as "lung_mask" / "mask"
        items = [{**{k: v for k, v in item.items() if k != "label"}, "id": Path(item["image"]).relative_to(path).as_posix()}
                 for item in _with_masks(path, _find_images(path), label=-1)]
        _log_macos_leftovers(path)
    elif _is_resource_fork(path.name):
        raise DataError(f"{path}: a macOS resource fork ('._' file from an archive), not an image. Give the image "
                        f"file itself ({path.name[2:]}) or its folder.")
    elif path.name.lower() in _DATALIST_FILES:
        names = list(class_names) if class_names is not None else None
        keys = {_norm(c): i for i, c in enumerate(names or [])}
        items = [item for part in _from_datalist(path, path.parent, names, keys).values() for item in part]
    elif path.name.lower().endswith(".mat"):
        images, labels = read_mat(path, data_key, label_key, require_labels=False)
        items = [{"image": f"{path}#{i}", "id": f"{path.name}#{i}"} for i in range(len(images))]
        if labels is not None:
            for item, label in zip(items, labels):
                item["label"] = int(label)
        _add_masks(items, path, images.shape)
    elif _is_image(path):
        items = [{"image": str(path), "id": path.name}]
    else:
        raise DataError(
            f"{path}: not a supported image file ({', '.join(IMAGE_SUFFIXES)}, DICOM or .mat). Convert it or give "
            "a folder of supported images."
        )
    if not items:
        raise DataError(
            f"{path}: no images found ({', '.join(IMAGE_SUFFIXES)} or extension-less DICOM, hidden files ignored). "
            "Give a folder that holds images, one image file or one .mat file."
        )
    return items
