"""Synthetic chest X-ray demo data (pneumonia_xray), laid out and named as the Kermany release.

Frontal chest radiographs drawn from a few shapes: a soft-tissue thorax, two dark lung fields, the spine and
mediastinum, the heart shadow, faint ribs, with random position, size, exposure and noise per patient. Pneumonia
adds patchy consolidations (bright, textured opacities) inside one or both lungs. The files are 8-bit JPEGs in
``NORMAL/`` and ``PNEUMONIA/``, named ``IM-<patient>-<k>.jpeg`` and ``person<patient>_bacteria_<k>.jpeg`` like the
real release, one to three films per patient, so that the bundle's patient-grouped split runs on the demo as on
the real data.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from scipy import ndimage

from medbundle.utils import atomic_write

__all__ = ["XRAY_CLASSES", "xray_phantom", "make_xray_demo"]

logger = logging.getLogger("medbundle.data")

XRAY_CLASSES = ("NORMAL", "PNEUMONIA")


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def xray_phantom(rng: np.random.Generator, patient: dict, pneumonia: bool, size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic frontal chest film of ``patient`` and its consolidation mask.

    Args:
        rng: random generator (film-to-film variation, consolidations).
        patient: anatomy drawn by :func:`_patient` (kept across the patient's films).
        pneumonia: draw consolidations.
        size: height and width in pixels.

    Returns:
        ``(image, mask)``: image float32 in [0, 1] (lungs dark, bone bright), mask uint8 (1 in a consolidation).
    """
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    dy, dx = rng.normal(0, 0.02, 2)
    y, x = yy - patient["cy"] - dy, xx - patient["cx"] - dx
    image = np.full((size, size), 0.05)
    image[_ellipse(y, x, 0.1, 0.0, 1.05, patient["body"])] = 0.55
    lungs = np.zeros((size, size), bool)
    for side in (-1, 1):
        lung = _ellipse(y, x, patient["lung_cy"], side * patient["lung_cx"], patient["lung_ry"], patient["lung_rx"])
        lungs |= lung & (y < 0.62)
    image[lungs] = 0.18
    ribs = (np.sin((y + 0.15 * x**2) * patient["rib_freq"]) > 0.75) & lungs
    image[ribs] += 0.08
    image[np.abs(x) < 0.07] = 0.8  # spine
    heart = _ellipse(y, x, 0.3, 0.12, 0.28, patient["heart"])
    image[heart & (np.abs(x) < 0.5)] = np.maximum(image[heart & (np.abs(x) < 0.5)], 0.6)
    mask = np.zeros((size, size), np.uint8)
    if pneumonia:
        inside = np.argwhere(lungs & ~heart)
        for _ in range(rng.integers(1, 4)):
            cy, cx = inside[rng.integers(len(inside))]
            r = rng.uniform(0.06, 0.14) * size
            blob = ((np.arange(size)[:, None] - cy) ** 2 + (np.arange(size)[None, :] - cx) ** 2) <= r**2
            texture = ndimage.gaussian_filter(rng.random((size, size)), 2.0)
            patch = blob & lungs & (texture > np.quantile(texture, 0.35))
            image[patch] += rng.uniform(0.22, 0.32)
            mask |= patch.astype(np.uint8)
    image = ndimage.gaussian_filter(image, 1.5)
    image = image * rng.uniform(0.85, 1.15) + rng.uniform(-0.05, 0.05)
    image += ndimage.gaussian_filter(rng.normal(0, 0.06, (size, size)), 0.8)
    return np.clip(image, 0, 1).astype(np.float32), mask


def _patient(rng: np.random.Generator) -> dict:
    return {
        "cy": rng.uniform(-0.05, 0.05), "cx": rng.uniform(-0.05, 0.05), "body": rng.uniform(0.8, 0.95),
        "lung_cy": rng.uniform(-0.1, 0.0), "lung_cx": rng.uniform(0.38, 0.46), "lung_ry": rng.uniform(0.6, 0.7),
        "lung_rx": rng.uniform(0.24, 0.3), "heart": rng.uniform(0.22, 0.3), "rib_freq": rng.uniform(14, 20),
    }


def make_xray_demo(out_dir: str | Path, n_patients: int = 90, size: int = 224, seed: int = 0) -> Path:
    """Write the synthetic chest X-ray set in Kermany's layout: ``NORMAL/`` and ``PNEUMONIA/`` JPEGs.

    Patients are 40 % normal and 60 % pneumonia (the real training split is 26 / 74 % by film), one to three
    films each. No split folders: the bundle splits by patient (its ``group_pattern`` finds the patient in the
    file name).

    Args:
        out_dir: destination folder (created).
        n_patients: number of patients.
        size: side of the square films (the shared Kermany copy is 224 x 224).
        seed: random seed.

    Returns:
        the folder written.
    """
    from PIL import Image

    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    n_files = 0
    for pid in range(n_patients):
        pneumonia = pid % 5 >= 2
        folder = out_dir / XRAY_CLASSES[int(pneumonia)]
        folder.mkdir(parents=True, exist_ok=True)
        patient = _patient(rng)
        for k in range(1, int(rng.integers(1, 4)) + 1):
            image, _ = xray_phantom(rng, patient, pneumonia, size)
            name = f"person{pid + 1}_bacteria_{k}.jpeg" if pneumonia else f"IM-{pid + 1:04d}-{k:04d}.jpeg"
            with atomic_write(folder / name, "wb") as f:
                Image.fromarray(np.round(image * 255).astype(np.uint8)).save(f, format="JPEG", quality=92)
            n_files += 1
    logger.info("wrote synthetic chest X-ray demo data (%d patients, %d films) to %s", n_patients, n_files, out_dir)
    return out_dir
