"""Synthetic demo data with ground truth, so every bundle runs on a fresh machine.

The brain-CT set is written in exactly the ct_infection seed's format (``Train.mat``, ``Val.mat``,
``Test.mat`` with ``data`` N x H x W and ``label`` as floats 0., 1., 2.), plus a lesion mask per
image in ``<Split>_mask.mat`` (variable ``mask``) for scoring heat maps.

The brain-MRI set (alzheimer_mri) is several axial slices per synthetic subject, 8-bit PNG in
Kaggle-style class folders, listed in ``datalist.csv`` with the subject as ``group`` (so the bundle
splits by subject) and a mask of the tissue lost to atrophy per slice.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from scipy import io as sio
from scipy import ndimage

from medbundle.utils import atomic_write

__all__ = ["CT_CLASSES", "MRI_CLASSES", "ct_phantom", "mri_phantom", "make_ct_demo", "make_mri_demo", "ensure_demo_data"]

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


MRI_CLASSES = ("NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented")

# per stage: ventricle scale, sulcal half-width, shrinkage of the brain from its healthy outline (normalised units)
_ATROPHY = {0: (1.0, 0.010, 0.00), 1: (1.3, 0.018, 0.025), 2: (1.6, 0.028, 0.05), 3: (2.0, 0.040, 0.08)}


def _mri_anatomy(subject: dict, stage: int, z: float, yy: np.ndarray, xx: np.ndarray) -> dict[str, np.ndarray]:
    """Tissue masks (brain, cortex, white matter, CSF) of one subject's slice at height ``z`` and ``stage``."""
    vent_scale, sulcus, shrink = _ATROPHY[int(stage)]
    extent = np.sqrt(1 - 0.35 * z**2)  # slices away from the centre cut a smaller brain
    y, x = yy - subject["cy"], xx - subject["cx"]
    angle = np.arctan2(y, x)
    wobble = 1 + sum(a * np.cos(k * angle + ph) for k, a, ph in subject["wobble"])
    r = np.sqrt((x / subject["ax"]) ** 2 + (y / subject["ay"]) ** 2) / (extent * wobble)  # 1 on the brain outline
    outline = r < 1.0
    brain = r < 1.0 - shrink  # atrophy: the brain pulls away from its healthy outline
    cortex = brain & (r > 1.0 - shrink - subject["cortex"])
    # sulci: CSF clefts from the surface inward, wider with atrophy
    sulci = np.zeros_like(brain)
    for a0, depth in subject["sulci"]:
        d_ang = np.angle(np.exp(1j * (angle - a0)))
        width = sulcus / max(r.mean(), 1e-3)
        sulci |= (np.abs(d_ang) * r < width) & (r > 1.0 - shrink - depth)
    # lateral ventricles: two crescents beside the midline, largest at the centre slice
    vent = np.zeros_like(brain)
    size = vent_scale * subject["vent"] * max(0.0, 1 - 1.2 * z**2)
    if size > 0:
        for side in (-1, 1):
            u, v = x - side * (0.10 + 0.25 * size), y + 0.05
            vent |= (u / (0.35 * size + 1e-6)) ** 2 + (v / (0.9 * size + 1e-6)) ** 2 < 1
    csf = outline & ~(brain & ~sulci & ~vent)
    return {"outline": outline, "brain": brain & ~sulci & ~vent, "cortex": cortex & ~sulci, "csf": csf}


def mri_phantom(
    rng: np.random.Generator, stage: int, subject: dict | None = None, z: float = 0.0, shape: tuple[int, int] = (208, 176)
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic skull-stripped axial T1 brain MRI slice and the mask of the tissue lost to atrophy.

    Grey cortex around brighter white matter, dark CSF in the ventricles and the sulci. Atrophy grows with
    ``stage`` (0 none .. 3 moderate dementia): the ventricles enlarge, the sulci widen and the brain shrinks from
    its outline; the mask is the CSF of the slice at ``stage`` that is tissue in the same subject's healthy slice.
    Subject anatomy, slice height, bias field, contrast and noise vary, so that no single global statistic tells
    the stage.

    Args:
        rng: random generator (noise, and the subject when ``subject`` is None).
        stage: 0..3, the index into :data:`MRI_CLASSES`.
        subject: anatomy from :func:`mri_subject` (so that slices of one subject share it); None: a new one.
        z: slice height in [-1, 1] (0 = at the ventricles).
        shape: (height, width) in pixels.

    Returns:
        ``(image, mask)``: image float32 in [0, 1], mask uint8.
    """
    subject = subject or mri_subject(rng)
    h, w = shape
    yy, xx = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    xx = xx * w / h  # square pixels
    now = _mri_anatomy(subject, stage, z, yy, xx)
    healthy = now if int(stage) == 0 else _mri_anatomy(subject, 0, z, yy, xx)
    img = np.zeros(shape, np.float32)
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), 3.0)
    texture /= np.abs(texture).max() + 1e-6
    img[now["outline"]] = 0.12  # CSF
    img[now["brain"]] = 0.78 + 0.05 * texture[now["brain"]]  # white matter
    img[now["cortex"]] = 0.50 + 0.05 * texture[now["cortex"]]  # grey matter
    img = ndimage.gaussian_filter(img, 0.8)
    bias = 1 + 0.12 * (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1))
    img = img * bias * rng.uniform(0.85, 1.15)
    img += np.abs(rng.normal(0, 0.025, shape)) * (img > 0.02)
    mask = (now["csf"] & ~healthy["csf"]).astype(np.uint8)
    return np.clip(img, 0, 1).astype(np.float32), mask


def mri_subject(rng: np.random.Generator) -> dict:
    """Random anatomy of one synthetic subject for :func:`mri_phantom`."""
    return {
        "cy": rng.uniform(-0.04, 0.04), "cx": rng.uniform(-0.04, 0.04),
        "ay": rng.uniform(0.80, 0.88), "ax": rng.uniform(0.62, 0.72),
        "wobble": [(k, rng.uniform(0, 0.03), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)],
        "cortex": rng.uniform(0.07, 0.10),
        "sulci": [(a, rng.uniform(0.10, 0.22)) for a in np.sort(rng.uniform(-np.pi, np.pi, rng.integers(14, 22)))],
        "vent": rng.uniform(0.16, 0.22),
    }


def make_mri_demo(
    out_dir: str | Path,
    n_subjects: int = 100,
    slices_per_subject: int = 6,
    shape: tuple[int, int] = (208, 176),
    seed: int = 0,
) -> Path:
    """Write the synthetic Alzheimer MRI set: PNG slices in class folders, masks, and ``datalist.csv``.

    Subjects per stage are 40 / 30 / 20 / 10 % (non, very mild, mild, moderate), imbalanced as the real data,
    each with ``slices_per_subject`` slices between heights -0.5 and 0.5. ``datalist.csv`` has the columns
    ``image,label,group,mask`` (label = class name, group = subject) and is written last, atomically: its
    presence marks a complete set. No split is given: the bundle splits by subject.

    Args:
        out_dir: destination folder (created).
        n_subjects: number of subjects.
        slices_per_subject: slices per subject.
        shape: (height, width) of the images (the Kaggle release is 208 x 176).
        seed: random seed.

    Returns:
        the folder written.
    """
    from PIL import Image

    out_dir = Path(out_dir)
    shares = np.array([0.4, 0.3, 0.2, 0.1])
    counts = np.maximum(1, np.round(shares * n_subjects)).astype(int)
    rng = np.random.default_rng(seed)
    rows = ["image,label,group,mask"]
    subject_id = 0
    for stage, n in enumerate(counts):
        name = MRI_CLASSES[stage]
        for folder in ("images", "masks"):
            (out_dir / folder / name).mkdir(parents=True, exist_ok=True)
        for _ in range(n):
            subject, sid = mri_subject(rng), f"sub-{subject_id:03d}"
            subject_id += 1
            for k, z in enumerate(np.linspace(-0.5, 0.5, slices_per_subject) + rng.uniform(-0.05, 0.05)):
                image, mask = mri_phantom(rng, stage, subject, float(z), shape)
                rel = f"{name}/{sid}_slice-{k}.png"
                for folder, array in (("images", np.round(image * 255)), ("masks", mask)):
                    with atomic_write(out_dir / folder / rel, "wb") as f:
                        Image.fromarray(array.astype(np.uint8)).save(f, format="PNG")
                rows.append(f"images/{rel},{name},{sid},masks/{rel}")
    with atomic_write(out_dir / "datalist.csv", "w") as f:
        f.write("\n".join(rows) + "\n")
    logger.info(f"wrote synthetic brain-MRI demo data ({subject_id} subjects, {len(rows) - 1} slices) to {out_dir}")
    return out_dir


def _make_xray_demo(out_dir: str | Path, **kwargs) -> Path:
    from medbundle.data.demo_xray import make_xray_demo

    return make_xray_demo(out_dir, **kwargs)


def _make_chest_demo(out_dir: str | Path, **kwargs) -> Path:
    from medbundle.data.demo_chest import make_chest_demo

    return make_chest_demo(out_dir, **kwargs)


_GENERATORS = {"ct_infection": make_ct_demo, "alzheimer_mri": make_mri_demo, "pneumonia_xray": _make_xray_demo,
               "chest_xray": _make_chest_demo}


def ensure_demo_data(dataset_dir: str | Path, task: str, **kwargs) -> str:
    """Create a bundle's demo data in ``dataset_dir`` when that folder holds no data.

    A folder with any visible file or sub-folder is left exactly as it is: a user's data is never
    overwritten or mixed with demo data.

    Args:
        dataset_dir: the bundle's ``dataset_dir``.
        task: which generator (``"ct_infection"``, ``"alzheimer_mri"``, ``"pneumonia_xray"``, ``"chest_xray"``).
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
    # generated beside the destination and moved into place whole: an interrupted run leaves no half data set
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        _GENERATORS[task](tmp, **kwargs)
        if path.is_dir():  # empty but for hidden entries (kept): move the generated files in
            for entry in sorted(tmp.iterdir()):
                os.replace(entry, path / entry.name)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(path)
