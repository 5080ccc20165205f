"""What the page shows of a prediction, as plain data: 8-bit images, the probability table, the referral line."""

from __future__ import annotations

from typing import Any

import numpy as np

from medbundle.serving import Prediction

__all__ = ["as_uint8", "figure_png", "heatmap_rgb", "probability_table", "referral_text"]


def as_uint8(image: np.ndarray) -> np.ndarray:
    """A float image (the model's input, about ``[0, 1]``) as 8-bit grey, scaled to its own range."""
    x = np.nan_to_num(np.asarray(image, dtype=np.float64))
    low, high = float(x.min()), float(x.max())
    x = (x - low) / (high - low) if high > low else np.zeros_like(x)
    return (x * 255).round().astype(np.uint8)


def figure_png(path: str, max_width: int = 480) -> bytes:
    """A figure file as an RGB PNG at most ``max_width`` pixels wide (the page shows card figures in columns: a
    full-size plot would be decoded, resized and re-encoded by the page on every rerun)."""
    import io

    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGBA")
        flat = Image.new("RGB", image.size, "white")
        flat.paste(image, mask=image.getchannel("A"))
        if flat.width > max_width:
            flat = flat.resize((max_width, round(flat.height * max_width / flat.width)), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        flat.save(out, format="PNG", optimize=True)
        return out.getvalue()


def heatmap_rgb(heatmap: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """A heat map in ``[0, 1]`` as RGB ``uint8`` through a matplotlib colour map (the overlay's colours)."""
    from matplotlib import colormaps

    rgb = colormaps[cmap](np.clip(np.nan_to_num(heatmap), 0.0, 1.0))[..., :3]
    return (rgb * 255).round().astype(np.uint8)


def probability_table(answer: Prediction) -> Any:
    """A ``pandas.DataFrame`` indexed by class: ``calibrated`` (where the model has a calibration record) and
    ``raw`` (the softmax) probabilities, for the bar chart."""
    import pandas as pd

    columns = {}
    if answer.calibrated is not None:
        columns["calibrated"] = [float(v) for v in answer.calibrated]
    columns["raw"] = [float(v) for v in answer.probs]
    return pd.DataFrame(columns, index=pd.Index(answer.class_names, name="class"))


def referral_text(answer: Prediction, level: float | None = None) -> tuple[bool | None, str]:
    """``(refer, line)``: whether to refer to a radiologist, and the sentence that says why.

    Args:
        answer: the prediction.
        level: the conformal coverage level of the calibration record (``0.9``), named in the sentence.

    ``refer`` is None without a calibration record (no conformal set for this model).
    """
    if answer.prediction_set is None:
        return None, "No conformal prediction set: this model has no calibration record (evaluate.json writes one)."
    shown = "{" + ", ".join(answer.prediction_set) + "}"
    name = f"{level:.0%} prediction set" if level else "prediction set"
    if answer.refer:
        why = "empty" if not answer.prediction_set else "more than one class"
        return True, (f"Refer to a radiologist: the {name} {shown} is {why}, so the model cannot "
                      f"settle on one class for this image.")
    return False, f"The {name} {shown} is a single class."
