"""medbundle.transforms.clahe: CLAHE(d) is OpenCV's 8-bit CLAHE of a [0, 1] image, float32 in [0, 1] of the input's
type (ndarray, tensor, MetaTensor with its metadata), array and dictionary forms agree, bad input names the fix."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, ScaleIntensityd

from medbundle.transforms import CLAHE, CLAHEd, LoadImage2Dd


def _low_contrast(h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    """A (1, H, W) float32 image in [0.4, 0.6]: a dim gradient with a faint blob and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    blob = np.exp(-((yy - h / 2) ** 2 + (xx - w / 3) ** 2) / 60)
    img = 0.45 + 0.05 * xx / w + 0.04 * blob + rng.normal(0, 0.01, (h, w))
    return np.clip(img, 0.4, 0.6).astype(np.float32)[None]


def test_matches_opencv_uint8_path():
    img = _low_contrast()
    expected = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(np.rint(img[0] * 255).astype(np.uint8))
    out = CLAHE()(img)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == img.shape
    np.testing.assert_array_equal(np.rint(out[0] * 255).astype(np.uint8), expected)
    assert 0 <= out.min() and out.max() <= 1
    assert out.std() > 2 * img.std()  # contrast is raised
    assert np.corrcoef(out.ravel(), img.ravel())[0, 1] > 0.5  # and the picture kept


def test_tile_grid_is_rows_then_columns():
    """A wide image with tiles (1, 4): OpenCV's tileGridSize is (columns, rows), so CLAHE passes it reversed."""
    img = _low_contrast(32, 128)
    expected = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(4, 1)).apply(np.rint(img[0] * 255).astype(np.uint8))
    np.testing.assert_array_equal(np.rint(CLAHE(3.0, (1, 4))(img)[0] * 255), expected)
    assert not np.array_equal(CLAHE(3.0, (1, 4))(img), CLAHE(3.0, (4, 1))(img))
    np.testing.assert_array_equal(CLAHE(tile_grid_size=8)(img), CLAHE()(img))


def test_keeps_type_device_and_metadata():
    img = _low_contrast()
    reference = CLAHE()(img)
    tensor = CLAHE()(torch.as_tensor(img, dtype=torch.float64))
    assert isinstance(tensor, torch.Tensor) and not isinstance(tensor, MetaTensor) and tensor.dtype == torch.float32
    meta = MetaTensor(torch.as_tensor(img), meta={"filename_or_obj": "x.png", "spatial_shape": (64, 80)})
    out = CLAHE()(meta)
    assert isinstance(out, MetaTensor) and out.dtype == torch.float32 and out.shape == (1, 64, 80)
    assert out.meta["filename_or_obj"] == "x.png"
    np.testing.assert_array_equal(tensor.numpy(), reference)
    np.testing.assert_array_equal(out.numpy(), reference)


def test_dictionary_form_agrees_and_pickles(tmp_path):
    img = _low_contrast()
    data = {"image": MetaTensor(torch.as_tensor(img)), "mask": torch.ones(1, 64, 80), "label": 1}
    out = CLAHEd(keys="image")(data)
    np.testing.assert_array_equal(out["image"].numpy(), CLAHE()(img))
    assert out["mask"] is data["mask"] and out["label"] == 1
    assert CLAHEd(keys=["image", "absent"], allow_missing_keys=True)(data)["image"].shape == (1, 64, 80)
    clone = pickle.loads(pickle.dumps(CLAHEd(keys="image", clip_limit=3.0)))  # into DataLoader workers
    np.testing.assert_array_equal(clone(data)["image"].numpy(), CLAHE(3.0)(img))


def test_in_a_loading_pipeline(tmp_path):
    from PIL import Image

    arr = np.rint(_low_contrast()[0] * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "x.png")
    pipeline = Compose([LoadImage2Dd("image"), ScaleIntensityd("image"), CLAHEd("image")])
    out = pipeline({"image": str(tmp_path / "x.png")})["image"]
    assert isinstance(out, MetaTensor) and out.shape == (1, 64, 80) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1 and float(out.std()) > 2 * arr.std() / 255


@pytest.mark.parametrize("img, message", [
    (np.zeros((3, 8, 8), np.float32), r"\(1, H, W\), got shape \(3, 8, 8\).*ToGrayscale"),
    (np.zeros((8, 8), np.float32), r"got shape \(8, 8\).*EnsureChannelFirst"),
    (np.zeros((1, 8, 8), np.uint8), r"float image in \[0, 1\], got dtype uint8.*ScaleIntensity"),
    (np.full((1, 8, 8), 255.0, np.float32), r"values in \[0, 1\], got \[255, 255\].*ScaleIntensity"),
    (np.full((1, 8, 8), np.nan, np.float32), r"NaN or infinite"),
])
def test_bad_input_names_the_fix(img, message):
    with pytest.raises(ValueError, match=message) as info:
        CLAHE()(img)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"key 'image': CLAHE: "):
        CLAHEd("image")({"image": img})


def test_rounding_outside_range_is_clipped_and_bad_settings_refused():
    img = _low_contrast()
    img[0, 0, 0], img[0, 0, 1] = -1e-4, 1 + 1e-4
    out = CLAHE()(img)
    assert out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match="clip_limit must be greater than 0"):
        CLAHE(clip_limit=0)
    with pytest.raises(ValueError, match="tile_grid_size must be one or two positive ints"):
        CLAHE(tile_grid_size=(8, 0))
