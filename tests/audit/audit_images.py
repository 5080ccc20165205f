"""Small synthetic pictures for the audit tests: textured like a radiograph (smooth anatomy plus fine detail), so
perceptual hashes and aligned correlations behave as on real images, and the copies a data set picks up on its way
(resized to another aspect, trimmed at the edges, re-encoded as JPEG)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def picture(seed: int, size: tuple[int, int] = (300, 260)) -> np.ndarray:
    """A grey uint8 picture ``(height, width)`` of smooth shapes and fine texture, different for every ``seed``."""
    rng = np.random.default_rng(seed)
    height, width = size
    image = np.zeros((height, width), np.float32)
    for sigma, weight in ((24, 1.0), (8, 0.6), (2, 0.35)):
        noise = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), sigma)
        image += weight * noise / (noise.std() + 1e-6)
    image -= image.min()
    return np.round(255 * image / image.max()).astype(np.uint8)


def trimmed(image: np.ndarray, top: float = 0.0, bottom: float = 0.0, left: float = 0.0,
            right: float = 0.0) -> np.ndarray:
    """``image`` with the given shares of its height / width cut off each edge."""
    h, w = image.shape[:2]
    return image[int(h * top):h - int(h * bottom), int(w * left):w - int(w * right)]


def resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def save(path: Path, image: np.ndarray, quality: int = 90) -> Path:
    """Write ``image`` (PNG, or JPEG at ``quality`` for .jpg/.jpeg), folders made; the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    assert cv2.imwrite(str(path), image, params)
    return path
