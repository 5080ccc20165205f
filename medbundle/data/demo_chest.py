"""Synthetic COVID-19 / pneumonia / normal chest X-ray demo data (chest_xray), laid out as COVID-QU-Ex publishes it.

The films are drawn by :func:`medbundle.data.demo_xray.xray_phantom` (thorax, lung fields, spine, heart, ribs, with
random position, size, exposure and noise per patient). What tells the classes apart is the pattern of the opacities,
as on real films:

- ``Normal``: none;
- ``Non-COVID`` (bacterial / lobar pneumonia): one to three dense, well-marked patchy consolidations;
- ``COVID-19``: faint, hazy ground-glass opacities in BOTH lungs, peripheral and lower-zone predominant.

The tree is the published one: ``<Class>/images/<file>.png``, ``<Class>/lung masks/<file>.png`` and
``<Class>/infection masks/<file>.png`` (0/255 PNGs with their image's file name), names as in the release
(``covid_<n>.png``, ``Non_COVID (<n>).png``, ``Normal (<n>).png``). As in COVID-QU-Ex, the infection mask is drawn for
COVID-19 films only (empty for the other classes), so heat maps can be scored against the lesions of that class.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from scipy import ndimage

from medbundle.data.demo_xray import _patient, xray_phantom
from medbundle.utils import atomic_write

__all__ = ["CHEST_CLASSES", "chest_phantom", "make_chest_demo"]

logger = logging.getLogger("medbundle.data")

CHEST_CLASSES = ("COVID-19", "Non-COVID", "Normal")
_FILE_NAMES = {"COVID-19": "covid_{}.png", "Non-COVID": "Non_COVID ({}).png", "Normal": "Normal ({}).png"}


def chest_phantom(rng: np.random.Generator, patient: dict, kind: str, size: int = 256) -> tuple[np.ndarray, ...]:
    """One synthetic frontal chest film of ``patient`` with its lung mask and its infection mask.

    Args:
        rng: random generator.
        patient: anatomy drawn by :func:`medbundle.data.demo_xray._patient`.
        kind: one of :data:`CHEST_CLASSES`.
        size: height and width in pixels.

    Returns:
        ``(image, lung_mask, infection_mask)``: the image float32 in [0, 1], the masks uint8 0/1. The infection
        mask is empty unless ``kind`` is ``"COVID-19"`` (as in COVID-QU-Ex).
    """
    if kind not in CHEST_CLASSES:
        raise ValueError(f"kind {kind!r} is not one of {CHEST_CLASSES}")
    image, _ = xray_phantom(rng, patient, pneumonia=kind == "Non-COVID", size=size)
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    y, x = yy - patient["cy"], xx - patient["cx"]
    lungs = np.zeros((size, size), bool)
    for side in (-1, 1):
        ell = ((y - patient["lung_cy"]) / patient["lung_ry"]) ** 2 + ((x - side * patient["lung_cx"]) / patient["lung_rx"]) ** 2
        lungs |= (ell <= 1.0) & (y < 0.62)
    infection = np.zeros((size, size), np.uint8)
    if kind == "COVID-19":
        # bilateral, peripheral, lower-zone ground glass: a smooth haze weighted towards the lateral lung edges
        lateral = np.clip((np.abs(x) - patient["lung_cx"] + patient["lung_rx"]) / (2 * patient["lung_rx"]), 0, 1)
        lower = np.clip((y - patient["lung_cy"] + 0.2) / patient["lung_ry"], 0, 1)
        texture = ndimage.gaussian_filter(rng.random((size, size)), size / 40)
        texture = (texture - texture.min()) / max(float(np.ptp(texture)), 1e-6)
        weight = (0.5 * lateral + 0.5 * lower) * texture
        infection = (lungs & (weight > np.quantile(weight[lungs], rng.uniform(0.55, 0.75)))).astype(np.uint8)
        haze = ndimage.gaussian_filter(infection.astype(np.float32), 3.0) * rng.uniform(0.10, 0.16)
        image = np.clip(image + haze, 0, 1).astype(np.float32)
    return image, lungs.astype(np.uint8), infection


def _film_variation(rng: np.random.Generator, arrays: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """What tells two real films apart beside their anatomy: patient position (rotation, scale, shift), exposure
    falling off unevenly across the film, and the detector's response curve. The same geometry moves the masks."""
    image, *masks = arrays
    size = image.shape[0]
    angle, scale = np.deg2rad(rng.uniform(-10, 10)), rng.uniform(0.85, 1.1)
    shift = rng.uniform(-0.08, 0.08, 2) * size
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / scale
    centre = np.array([size / 2, size / 2])
    offset = centre - rot @ (centre + shift)
    image = ndimage.affine_transform(image, rot, offset, order=1, mode="nearest")
    masks = [ndimage.affine_transform(m, rot, offset, order=0, mode="constant") for m in masks]
    field = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), size / 6)
    field = 1 + rng.uniform(0.1, 0.25) * field / max(float(np.abs(field).max()), 1e-6)
    image = np.clip(image * field, 0, 1) ** rng.uniform(0.75, 1.3)
    return (image.astype(np.float32), *masks)


def make_chest_demo(out_dir: str | Path, n_per_class: int = 60, size: int = 256, seed: int = 0) -> Path:
    """Write the synthetic chest X-ray set in COVID-QU-Ex's layout (images, lung masks, infection masks per class).

    Args:
        out_dir: destination folder (created).
        n_per_class: films per class.
        size: side of the square films (COVID-QU-Ex's are 256 x 256).
        seed: random seed.

    Returns:
        the folder written.
    """
    from PIL import Image

    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    for kind in CHEST_CLASSES:
        for sub in ("images", "lung masks", "infection masks"):
            (out_dir / kind / sub).mkdir(parents=True, exist_ok=True)
        for n in range(1, n_per_class + 1):
            image, lungs, infection = _film_variation(rng, chest_phantom(rng, _patient(rng), kind, size))
            name = _FILE_NAMES[kind].format(n)
            for sub, array in (("images", np.round(image * 255)), ("lung masks", lungs * 255),
                               ("infection masks", infection * 255)):
                with atomic_write(out_dir / kind / sub / name, "wb") as f:
                    Image.fromarray(array.astype(np.uint8)).save(f, format="PNG")
    logger.info("wrote synthetic chest X-ray demo data (%d films per class, COVID-QU-Ex layout) to %s",
                n_per_class, out_dir)
    return out_dir
