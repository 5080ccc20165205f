"""Wrap PNG/JPEG images as DICOM Secondary Capture files (one study and series per image), e.g. to load a PACS.

    python scripts/make_dicom_sc.py ../shared/data/pneumonia_xray/test/NORMAL/IM-0001-0001.jpeg -o /tmp/sc
    python scripts/make_dicom_sc.py /folder/of/pngs -o /tmp/sc --limit 20 --modality CR

Each file becomes ``<output>/<stem>.dcm``: Secondary Capture Image Storage, MONOCHROME2, 8 bits (16 bits for 16-bit
PNGs), explicit VR little endian, fresh Study/Series/SOP Instance UIDs, the class folder name (NORMAL, PNEUMONIA)
as the series description, no patient data (PatientName "ANONYMOUS"). Colour images are converted to grey as
medbundle's reader does. Written atomically; the output is read back with pydicom before it is kept.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

__all__ = ["to_secondary_capture", "main"]

_SUFFIXES = {".png", ".jpg", ".jpeg"}


def to_secondary_capture(image_path: str | os.PathLike, out_path: str | os.PathLike, modality: str = "OT",
                         description: str | None = None) -> Path:
    """Write ``image_path`` (PNG/JPEG) as a DICOM Secondary Capture file at ``out_path``.

    Args:
        image_path: a PNG or JPEG file (grey or colour; colour is converted to grey).
        out_path: the ``.dcm`` file to write (atomically).
        modality: the Modality tag (``OT`` other, ``CR``/``DX`` for radiographs).
        description: the series description (default: the image's folder name).

    Returns:
        ``out_path``.

    Raises:
        ValueError: a file that is not a readable PNG/JPEG image (one line).
    """
    image_path, out_path = Path(image_path), Path(out_path)
    try:
        with Image.open(image_path) as im:
            im.load()
            pixels = np.asarray(im if im.mode in ("L", "I;16", "I;16B", "I") else im.convert("L"))
    except Exception as e:
        raise ValueError(f"{image_path}: not a readable PNG/JPEG image ({type(e).__name__}). Pass PNG or JPEG files.")
    if pixels.ndim != 2:
        raise ValueError(f"{image_path}: {pixels.shape} pixels, not a 2D grey image. Pass 2D PNG or JPEG files.")
    bits = 8 if pixels.dtype == np.uint8 else 16
    pixels = pixels.astype(np.uint8 if bits == 8 else np.uint16)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(out_path), {}, file_meta=meta, preamble=b"\0" * 128)
    now = datetime.datetime.now()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, 1
    ds.Modality, ds.ConversionType = modality, "WSD"
    ds.PatientName, ds.PatientID = "ANONYMOUS", "ANON-" + image_path.stem[:40]
    ds.SeriesDescription = (description or image_path.parent.name)[:64]
    ds.ImageComments = f"from {image_path.name}"[:10240]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit, ds.PixelRepresentation = bits - 1, 0
    ds.PixelData = pixels.tobytes()

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, suffix=".tmp")
    os.close(fd)
    try:
        ds.save_as(tmp, enforce_file_format=True)
        os.chmod(tmp, 0o644)
        _check(tmp, pixels)
        os.replace(tmp, out_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out_path


def _check(path: str, pixels: np.ndarray) -> None:
    import pydicom

    back = pydicom.dcmread(path)
    if not np.array_equal(back.pixel_array, pixels):
        raise RuntimeError(f"{path}: pixels read back differ from the source image")


def _inputs(paths: list[str], limit: int | None) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.suffix.lower() in _SUFFIXES)
        elif p.is_file():
            found.append(p)
        else:
            raise ValueError(f"{p}: no such file or folder. Pass PNG/JPEG files or folders holding them.")
    return found[:limit] if limit else found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="PNG/JPEG files or folders (searched recursively)")
    parser.add_argument("-o", "--output", required=True, help="folder for the .dcm files")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images")
    parser.add_argument("--modality", default="OT", help="Modality tag (default OT; CR or DX for radiographs)")
    args = parser.parse_args(argv)
    try:
        images = _inputs(args.inputs, args.limit)
        if not images:
            raise ValueError(f"{', '.join(args.inputs)}: no PNG/JPEG files found. Pass images or folders of them.")
        out = Path(args.output)
        names: set[str] = set()
        for image in images:
            stem = image.stem if image.stem not in names else f"{image.parent.name}_{image.stem}"
            names.add(stem)
            to_secondary_capture(image, out / f"{stem}.dcm", modality=args.modality)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(images)} DICOM secondary capture file(s) in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
