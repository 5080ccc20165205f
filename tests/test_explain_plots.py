"""Heat-map figures and anatomy masks (medbundle.explain.plots): fast, CPU only."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from medbundle.data.demo import CT_CLASSES, ct_phantom
from medbundle.explain.plots import (
    anatomy_mask,
    overlay,
    restrict_to_anatomy,
    save_class_grid,
    save_mean_maps,
    save_triplet,
    spillover_fraction,
)


def _ramp(h: int = 16, w: int = 20) -> np.ndarray:
    return np.linspace(-3.0, 5.0, h * w).reshape(h, w)


def _chest_phantom(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frontal chest X-ray cartoon: bright body ellipse touching the bottom edge, two dark lungs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    body = ((xx - 0.5) / 0.46) ** 2 + ((yy - 0.55) / 0.5) ** 2 < 1
    lungs = np.zeros((size, size), bool)
    for cx in (0.3, 0.7):
        lungs |= ((xx - cx) / 0.14) ** 2 + ((yy - 0.5) / 0.28) ** 2 < 1
    img = np.where(body, 0.75, 0.05)
    img[lungs] = 0.25
    img = ndimage.gaussian_filter(img, 1.0) + rng.normal(0, 0.03, img.shape)
    return img.astype(np.float32), lungs, body


def _is_png(path, min_w: int = 200, min_h: int = 100) -> bool:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.format == "PNG" and im.size[0] >= min_w and im.size[1] >= min_h


# ----------------------------------------------------------------------------------------------
# overlay
# ----------------------------------------------------------------------------------------------
def test_overlay_shape_range_and_plain_image_for_zero_heat():
    img = _ramp()
    out = overlay(img, np.zeros_like(img))
    assert out.shape == (16, 20, 3) and out.dtype == np.float64
    assert out.min() >= 0.0 and out.max() <= 1.0
    grey = (img - img.min()) / (img.max() - img.min())
    for ch in range(3):
        np.testing.assert_allclose(out[..., ch], grey, atol=1e-12)
    rnd = overlay(img, np.random.default_rng(0).uniform(-0.5, 1.5, img.shape))  # clipped, still in range
    assert rnd.shape == (16, 20, 3) and rnd.min() >= 0.0 and rnd.max() <= 1.0


def test_overlay_hottest_pixel_is_top_of_colormap():
    from matplotlib import colormaps

    img = np.zeros((9, 9))
    heat = np.zeros((9, 9))
    heat[2, 6] = 1.0
    out = overlay(img, heat, alpha=1.0, cmap="jet")
    np.testing.assert_allclose(out[2, 6], colormaps["jet"](1.0)[:3])  # jet's top: dark red
    assert out[2, 6, 0] > 0.4 and out[2, 6, 2] < 0.1  # red, not the blue bottom (not inverted)
    np.testing.assert_allclose(np.delete(out.reshape(-1, 3), 2 * 9 + 6, axis=0), 0.0)  # rest: plain image
    blended = overlay(img, heat)  # default alpha: still red at that pixel, plain elsewhere
    assert blended[2, 6, 0] > blended[2, 6, 2] and blended[0, 0].max() == 0.0


def test_overlay_mask_zeroes_heat_outside():
    img = _ramp(8, 8)
    heat = np.full((8, 8), 0.9)
    mask = np.zeros((8, 8), bool)
    mask[2:5, 3:7] = True
    out = overlay(img, heat, mask=mask)
    np.testing.assert_allclose(out[~mask], overlay(img, np.zeros_like(heat))[~mask])
    np.testing.assert_allclose(out, overlay(img, heat * mask))
    assert not np.allclose(out[mask], overlay(img, np.zeros_like(heat))[mask])


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------
def _grid_inputs(n: int = 7, size: int = 32):
    rng = np.random.default_rng(3)
    images = rng.uniform(size=(n, size, size)).astype(np.float32)
    maps = rng.uniform(size=(n, size, size)).astype(np.float32)
    labels = np.array([0, 0, 0, 2, 2, 0, 2])[:n]  # class 1 has no images
    preds = np.array([0, 1, 0, 2, 0, 0, 2])[:n]
    return images, maps, labels, preds


def _write_all(tmp_path) -> dict:
    rng = np.random.default_rng(0)
    img, mask = ct_phantom(rng, 2, 64)
    heat = ndimage.gaussian_filter(mask.astype(float), 2)
    heat /= heat.max()
    images, maps, labels, preds = _grid_inputs()
    paths = {k: tmp_path / f"{k}.png" for k in ("triplet", "grid", "mean")}
    save_triplet(paths["triplet"], img, heat, title="case 0: severe", mask=anatomy_mask(img), gt_mask=mask)
    save_class_grid(paths["grid"], images, maps, labels, preds, CT_CLASSES, max_per_class=3)
    save_mean_maps(paths["mean"], {c: maps[labels == k].mean(0) if (labels == k).any() else np.zeros((32, 32))
                                   for k, c in enumerate(CT_CLASSES)})
    return paths


def test_savers_write_valid_pngs(tmp_path):
    paths = _write_all(tmp_path)
    for path in paths.values():
        assert _is_png(path), path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())  # no temp files


def test_class_grid_edge_cases(tmp_path):
    images, maps, labels, preds = _grid_inputs()
    # no image at all for any class, (N, 1, H, W) inputs, a single class
    save_class_grid(tmp_path / "empty.png", images[:0], maps[:0], labels[:0], preds[:0], CT_CLASSES)
    save_class_grid(tmp_path / "chan.png", images[:, None], maps[:, None], labels, preds, CT_CLASSES, max_per_class=1)
    save_class_grid(tmp_path / "one.png", images[:2], maps[:2], [0, 0], [0, 0], ["only"])
    for name in ("empty.png", "chan.png", "one.png"):
        assert _is_png(tmp_path / name, 100, 100)
    with pytest.raises(ValueError, match="class indices"):
        save_class_grid(tmp_path / "bad.png", images, maps, labels + 1, preds, CT_CLASSES)
    with pytest.raises(ValueError):
        save_triplet(tmp_path / "bad.png", images[0], maps[0][:5])
    assert not (tmp_path / "bad.png").exists()


def test_failed_savefig_leaves_no_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def broken_savefig(self, fname, *args, **kwargs):
        fname.write(b"\x89PNG\r\n\x1a\n partial")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    previous = tmp_path / "grid.png"
    previous.write_bytes(b"previous content")
    images, maps, labels, preds = _grid_inputs()
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_triplet(tmp_path / "triplet.png", images[0], maps[0], gt_mask=maps[0] > 0.5)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_class_grid(previous, images, maps, labels, preds, CT_CLASSES)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_mean_maps(tmp_path / "mean.png", {"a": maps[0]})
    assert previous.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


# ----------------------------------------------------------------------------------------------
# anatomy masks
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [128, 64])
def test_brain_mask_on_ct_phantoms(size):
    rng = np.random.default_rng(size)
    for i in range(10):  # 10 per size, all severities
        img, lesion = ct_phantom(rng, i % 3, size)
        brain = anatomy_mask(img, "brain")
        body = anatomy_mask(img, "body")
        assert brain.dtype == bool and brain.shape == img.shape
        if lesion.any():
            assert brain[lesion > 0].mean() >= 0.99, (size, i)
        # inside the body, clearly smaller: skull ring and background excluded
        assert not (brain & ~body).any()
        assert 0.5 * body.sum() < brain.sum() < body.sum()
        assert not brain[0].any() and not brain[-1].any() and not brain[:, 0].any() and not brain[:, -1].any()
        skull = img >= 0.9 * np.percentile(img, 99.5)  # the bright ring
        assert (skull & brain).sum() <= 0.01 * skull.sum(), (size, i)
        assert (skull & body & ~brain).sum() >= 0.95 * skull.sum()
        assert img[brain].mean() < 0.75 * img[skull].mean()


def test_brain_mask_falls_back_to_body_without_a_skull_ring():
    yy, xx = np.mgrid[-1:1:64j, -1:1:64j]
    disc = np.where(xx**2 + yy**2 < 0.6, 0.5, 0.0) + np.random.default_rng(0).normal(0, 0.01, (64, 64))
    np.testing.assert_array_equal(anatomy_mask(disc, "brain"), anatomy_mask(disc, "body"))
    assert anatomy_mask(disc, "body").sum() == pytest.approx((xx**2 + yy**2 < 0.6).sum(), rel=0.05)
    assert not anatomy_mask(np.full((8, 8), 3.0), "brain").any()  # constant image: nothing
    with pytest.raises(ValueError, match="kind"):
        anatomy_mask(disc, "liver")


def test_body_mask_is_largest_component_with_holes_filled():
    img = np.zeros((40, 40))
    img[5:35, 5:30] = 1.0
    img[15:20, 12:18] = 0.0  # a dark hole inside
    img[36:39, 36:39] = 1.0  # a small bright speck
    body = anatomy_mask(img, "body")
    expected = np.zeros((40, 40), bool)
    expected[5:35, 5:30] = True
    np.testing.assert_array_equal(body, expected)


@pytest.mark.parametrize("size", [128, 64])
def test_lung_mask_on_chest_phantom(size):
    img, lungs, body = _chest_phantom(size)
    mask = anatomy_mask(img, "lung")
    dice = 2 * (mask & lungs).sum() / (mask.sum() + lungs.sum())
    assert dice > 0.9
    assert ndimage.label(mask)[1] == 2
    assert not (mask & ~body).any()  # no air around the patient


# ----------------------------------------------------------------------------------------------
# restricting maps to the anatomy
# ----------------------------------------------------------------------------------------------
def test_restrict_to_anatomy_known_values():
    m = np.array([[0.2, 0.8], [0.4, 0.1]])
    k = np.array([[1, 0], [1, 0]], bool)
    out = restrict_to_anatomy(m, k)
    assert out.shape == (2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.5, 0.0], [1.0, 0.0]])
    stack = np.stack([m, np.zeros_like(m), np.array([[0.0, 0.9], [0.0, 0.3]])])
    out = restrict_to_anatomy(stack, k)  # one mask for all maps
    np.testing.assert_allclose(out[0], [[0.5, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(out[1], 0.0)  # all zero stays zero
    np.testing.assert_array_equal(out[2], 0.0)  # all relevance outside: nothing left
    out = restrict_to_anatomy(stack, np.stack([k, k, ~k]))  # one mask per map
    np.testing.assert_allclose(out[2], [[0.0, 1.0], [0.0, 1 / 3]], rtol=1e-6)
    with pytest.raises(ValueError):
        restrict_to_anatomy(stack, np.ones((3, 3), bool))


def test_spillover_fraction_known_values():
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    assert spillover_fraction(np.ones((4, 4)), mask) == pytest.approx(0.5)
    assert spillover_fraction(np.ones((4, 4)) * mask, mask) == 0.0
    heat = np.zeros((4, 4))
    heat[0, 0], heat[3, 3] = 3.0, 1.0
    assert spillover_fraction(heat, mask) == pytest.approx(0.25)
    assert np.isnan(spillover_fraction(np.zeros((4, 4)), mask))
    # restricting removes all spillover
    assert spillover_fraction(restrict_to_anatomy(heat, mask), mask) == 0.0
