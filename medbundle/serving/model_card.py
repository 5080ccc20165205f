"""A bundle's model card as data: what its ``metadata.json`` says about data, figures and intended use.

Read by the MONAI Label app's ``/info/`` and by the web demo, so that both show the same card.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["model_card", "RESEARCH_ONLY"]

#: shown with every model card, whatever the bundle's own words.
RESEARCH_ONLY = "Research and education only, not for clinical use."

_CARD_KEYS = ("name", "version", "task", "description", "data_source", "intended_use", "image_classes", "references")


def model_card(bundle_root: str | os.PathLike) -> dict[str, Any]:
    """The model card of the bundle at ``bundle_root``.

    Returns:
        ``{"bundle", "name", "version", "task", "description", "data_source", "intended_use", "image_classes",
        "references", "classes", "figures", "figures_note", "docs", "disclaimer"}``: the figures are
        ``eval_metrics`` of ``metadata.json`` (the shipped model's measured figures; ``figures_note`` says on what),
        ``docs`` the path of the bundle's ``docs/README.md`` (the full card, with intervals) where present.
    """
    root = Path(bundle_root)
    meta = json.loads((root / "configs" / "metadata.json").read_text(encoding="utf-8"))
    card: dict[str, Any] = {"bundle": root.name}
    card.update({k: meta.get(k) for k in _CARD_KEYS})
    classes = meta.get("network_data_format", {}).get("outputs", {}).get("pred", {}).get("channel_def", {})
    card["classes"] = [classes[k] for k in sorted(classes, key=int)] if classes else []
    metrics = dict(meta.get("eval_metrics") or {})
    card["figures_note"] = metrics.pop("_desc_", None)
    card["figures"] = {k: v for k, v in metrics.items() if not str(k).startswith("_")}
    docs = root / "docs" / "README.md"
    card["docs"] = str(docs) if docs.is_file() else None
    card["disclaimer"] = RESEARCH_ONLY
    return card
