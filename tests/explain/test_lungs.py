"""medbundle.explain.lungs: lung fields of frontal chest X-rays from the image alone, on drawings and on real masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from helpers.explain import chest_xray_phantom
from scipy import ndimage

from medbundle.explain import anatomy
from medbundle.explain.anatomy import anatomy_mask
from medbundle.explain.lungs import lung_mask

COVID_QU = SHARED_DATA / "covid_xray" / "Infection Segmentation Data" / "Train"


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("size", [64, 128, 256, 512])
def test_two_lungs_of_a_drawn_chest(size):
    for seed in range(2):
        img, lungs = chest_xray_phantom(size, seed)
        mask = lung_mask(img)
        assert mask.dtype == bool and mask.shape == img.shape
        assert _dice(mask, lungs) > 0.88, (size, seed)
        lab, n = ndimage.label(mask)
        assert n == 2
        centres = ndimage.center_of_mass(mask, lab, [1, 2])
        assert sorted(c[1] < size / 2 for c in centres) == [False, True]  # one lung each side of the spine
        outside = np.zeros_like(mask)
        outside[:, : int(0.1 * size)] = outside[:, int(0.9 * size) :] = True  # the air beside the arms
        assert not (mask & outside).any()


def test_a_consolidated_lung_is_mirrored_from_its_twin():
    img, lungs = chest_xray_phantom(128, 0, consolidation=True)
    mask = lung_mask(img)
    left = lungs.copy()
    left[:, 64:] = False
    assert (mask & left).sum() >= 0.8 * left.sum()  # the dark top alone is under half of it
    assert _dice(mask, lungs) > 0.85


def test_intensity_range_and_input_forms_do_not_matter():
    img, _ = chest_xray_phantom(96, 3)
    ref = lung_mask(img)
    np.testing.assert_array_equal(lung_mask(img * 4000.0 - 1000.0), ref)
    np.testing.assert_array_equal(lung_mask(torch.from_numpy(img)[None]), ref)  # (1, H, W) tensor
    np.testing.assert_array_equal(anatomy_mask(img, "chest"), anatomy_mask(img, "lung"))
    np.testing.assert_array_equal(anatomy_mask(img, "lung"), ref)
    big, _ = chest_xray_phantom(256, 3)
    assert _dice(lung_mask(big, working_size=0), lung_mask(big)) > 0.93  # at full size: about the same


def test_no_lung_in_a_blank_image_and_the_body_as_fallback(monkeypatch):
    assert not lung_mask(np.full((64, 64), 7.0)).any()
    assert not lung_mask(np.zeros((4, 4))).any()
    with pytest.raises(ValueError, match="image must have shape"):
        lung_mask(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="working_size"):
        lung_mask(np.zeros((8, 8)), working_size=-1)
    # anatomy_mask falls back to the body where the lungs found cover under 2 % of it
    img, _ = chest_xray_phantom(64, 0)
    tiny = np.zeros(img.shape, bool)
    tiny[30:32, 20:22] = True
    monkeypatch.setattr(anatomy, "lung_mask", lambda image: tiny)
    np.testing.assert_array_equal(anatomy_mask(img, "lung"), anatomy_mask(img, "body"))


@pytest.mark.realdata
@pytest.mark.skipif(not COVID_QU.is_dir(), reason=f"COVID-QU-Ex lung masks not found at {COVID_QU}")
def test_dice_against_expert_lung_masks():
    """20 images of each class, evenly spaced in file order: measured median 0.858, 10th percentile 0.728."""
    cv2 = pytest.importorskip("cv2")
    dice = []
    for cls in ("COVID-19", "Non-COVID", "Normal"):
        files = sorted((COVID_QU / cls / "images").glob("*.png"))
        for path in files[:: len(files) // 20][:20]:
            truth = cv2.imread(str(COVID_QU / cls / "lung masks" / path.name), cv2.IMREAD_GRAYSCALE) > 127
            dice.append(_dice(lung_mask(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)), truth))
    assert len(dice) == 60
    assert np.median(dice) >= 0.82 and np.percentile(dice, 10) >= 0.65, (np.median(dice), np.percentile(dice, 10))
