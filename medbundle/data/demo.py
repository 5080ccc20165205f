"""Synthetic demo data with ground truth, so every bundle runs on a fresh machine.

The brain-CT set is written in exactly the ct_infection seed's format (``Train.mat``, ``Val.mat``,
``Test.mat`` with ``data`` N x H x W and ``label`` as floats 0., 1., 2.), plus a lesion mask per
image in ``<Split>_mask.mat`` (variable ``mask``) for scoring heat maps.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from scipy import io as sio
from scipy import ndimage

from medbundle.utils import atomic_write

__all__ = ["CT_CLASSES", "ct_phantom", "make_ct_demo", "ensure_demo_data"]

logger = logging.getLogger("medbundle.data")

CT_CLASSES = ("no_infection", "mild_infection", "severe_infection")

# per severity: (min foci, max foci), radius range (fraction of the half width), core contrast range
_FOCI = {
    0: ((0, 0), (0.0, 0.0), (0.0, 0.0)),
    1: ((1, 2), (0.08, 0.11), (0.16, 0.22)),
    2: ((3, 5), (0.10, 0.14), (0.22, 0.28)),
}


def ct_phantom(rng: np.random.Generator, severity: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic axial head-CT slice and its lesion mask.

    A skull ring around brain parenchyma with grey/white texture and two ventricles; infection foci
    (hypodense cores with an enhancing rim, as abscesses look on contrast CT) whose count, size and
    contrast grow with ``severity``, at random places inside the brain; correlated noise plus a
    random window gain and offset, so that no global statistic (mean, spread, size) tells the class.

    Args:
        rng: random generator (the only source of randomness).
        severity: 0 (no infection), 1 (mild) or 2 (severe).
        size: height and width in pixels.

    Returns:
        ``(image, mask)``: image float32 in [0, 1], mask uint8 (1 inside a focus).
    """
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    cy, cx = rng.uniform(-0.05, 0.05, 2)
    ay, ax = rng.uniform(0.80, 0.90), rng.uniform(0.66, 0.76)
    theta = rng.uniform(-0.2, 0.2)
    y, x = yy - cy, xx - cx
    u = x * np.cos(theta) + y * np.sin(theta)
    v = -x * np.sin(theta) + y * np.cos(theta)
    r = np.sqrt((u / ax) ** 2 + (v / ay) ** 2)  # 1 on the outer skull border
    thick = rng.uniform(0.07, 0.10)
    brain = r < 1 - thick
    img = np.zeros((size, size), np.float32)
    img[(r < 1) & ~brain] = rng.uniform(0.85, 0.95)
    # parenchyma: smooth grey/white matter texture
    texture = ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 20)
    texture /= np.abs(texture).max() + 1e-6
    img[brain] = (0.45 + 0.04 * texture)[brain]
    # ventricles: two mirrored crescents near the centre
    vent = np.zeros_like(brain)
    vw, vh, off = rng.uniform(0.07, 0.11), rng.uniform(0.18, 0.26), rng.uniform(0.08, 0.12)
    for side in (-1, 1):
        vent |= ((u - side * off) / vw) ** 2 + ((v + 0.05) / vh) ** 2 < 1
    img[vent & brain] = 0.18
    # infection foci inside the brain, away from the skull and the ventricles
    mask = np.zeros((size, size), np.uint8)
    (lo, hi), (rlo, rhi), (clo, chi) = _FOCI[int(severity)]
    allowed = brain & ~ndimage.binary_dilation(vent, iterations=max(1, size // 32))
    brain_mean = img[brain].mean()
    placed, tries = 0, 0
    n_foci = rng.integers(lo, hi + 1) if hi else 0
    while placed < n_foci and tries < 200:
        tries += 1
        rad = rng.uniform(rlo, rhi)
        fy, fx = rng.uniform(-0.75, 0.75), rng.uniform(-0.6, 0.6)
        d = np.sqrt((xx - fx) ** 2 + (yy - fy) ** 2)
        disc = d < rad * 1.35
        if not allowed[disc].all() or mask[disc].any():
            continue
        contrast = rng.uniform(clo, chi)
        core = np.exp(-((d / rad) ** 4))
        rim = np.exp(-(((d - rad) / (0.28 * rad)) ** 2))
        img += (-contrast * core + 0.6 * contrast * rim) * brain
        mask[d < rad * 1.1] = 1
        placed += 1
    # keep the mean brain density unchanged: the foci, not a global shift, carry the class
    img[brain] += brain_mean - img[brain].mean()
    # acquisition: slight blur, correlated and white noise, random window
    img = ndimage.gaussian_filter(img, 0.6)
    img += 0.025 * ndimage.gaussian_filter(rng.standard_normal((size, size)), 1.0) * 3
    img += rng.normal(0, 0.02, (size, size))
    img = img * rng.uniform(0.8, 1.2) + rng.uniform(-0.08, 0.08)
    return np.clip(img, 0, 1).astype(np.float32), mask


def make_ct_demo(
    out_dir: str | Path,
    n_train: int = 900,
    n_val: int = 150,
    n_test: int = 150,
    size: int = 128,
    seed: int = 0,
) -> Path:
    """Write the synthetic brain-CT infection set in the seed's ``.mat`` format.

    Classes are balanced in every split. Files: ``Train.mat``, ``Val.mat``, ``Test.mat`` (``data``
    uint8 N x size x size, ``label`` float 0./1./2.) and ``Train_mask.mat`` etc. (``mask`` uint8).
    Deterministic from ``seed``; every file is written atomically.

    Args:
        out_dir: destination folder (created).
        n_train: images in the training split.
        n_val: images in the validation split.
        n_test: images in the test split.
        size: image height and width.
        seed: random seed.

    Returns:
        the folder written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, (split, n) in enumerate((("Train", n_train), ("Val", n_val), ("Test", n_test))):
        rng = np.random.default_rng([seed, i])
        labels = np.arange(n) % len(CT_CLASSES)
        rng.shuffle(labels)
        pairs = [ct_phantom(rng, int(lab), size) for lab in labels]
        data = np.stack([np.round(p[0] * 255) for p in pairs]).astype(np.uint8)
        masks = np.stack([p[1] for p in pairs])
        with atomic_write(out_dir / f"{split}_mask.mat", "wb") as f:
            sio.savemat(f, {"mask": masks}, do_compression=True)
        # the data file last: its presence marks a complete split
        with atomic_write(out_dir / f"{split}.mat", "wb") as f:
            sio.savemat(f, {"data": data, "label": labels.astype(np.float64)}, do_compression=True)
    logger.info(f"wrote synthetic brain-CT demo data ({n_train}/{n_val}/{n_test} images, {size} px) to {out_dir}")
    return out_dir


_GENERATORS = {"ct_infection": make_ct_demo}


def ensure_demo_data(dataset_dir: str | Path, task: str, **kwargs) -> str:
    """Create a bundle's demo data in ``dataset_dir`` when that folder holds no data.

    A folder with any visible file or sub-folder is left exactly as it is: a user's data is never
    overwritten or mixed with demo data.

    Args:
        dataset_dir: the bundle's ``dataset_dir``.
        task: which generator (``"ct_infection"``).
        kwargs: passed to the generator (sizes, seed).

    Returns:
        ``dataset_dir`` as a string.
    """
    if task not in _GENERATORS:
        raise ValueError(f"no demo data generator for task {task!r}; known: {sorted(_GENERATORS)}")
    path = Path(dataset_dir).expanduser()
    if path.is_dir() and any(not p.name.startswith(".") for p in path.iterdir()):
        return str(path)
    logger.info(f"{path} holds no data: generating the {task} demo data set there")
    _GENERATORS[task](path, **kwargs)
    return str(path)
