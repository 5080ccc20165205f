"""Quality measures of saliency maps: localisation, stability, randomisation sanity, faithfulness, attention, shortcuts.

One module per family: :mod:`~medbundle.explain.measures.localisation` (against ground-truth masks),
:mod:`~medbundle.explain.measures.stability` (under input noise), :mod:`~medbundle.explain.measures.randomisation`
(cascading model randomisation), :mod:`~medbundle.explain.measures.deletion_insertion` (faithfulness),
:mod:`~medbundle.explain.measures.attention` (where the maps look), :mod:`~medbundle.explain.measures.shortcuts`
(the model scored with the anatomy blanked, relevance inside the anatomy) and
:mod:`~medbundle.explain.measures.summary`.

Conventions shared by every function here:

- an *explainer* is a plain callable ``explain(x (B,C,H,W), class_idx (B,) | None) -> (B,1,H,W)`` returning
  heat maps in [0, 1] (1 = most relevant); a *model* is an ``nn.Module`` returning logits ``(B,K)``;
- a *map* is ``(H,W)`` (or ``(N,H,W)`` / ``(N,1,H,W)`` for many), a *mask* a bool/uint8 ``(H,W)`` array;
  numpy arrays and torch tensors are both accepted, NaN relevance is read as 0;
- every measure is reported per image (a list of flat dicts) and summarised with :func:`summarise`;
  NaN marks "undefined for this image" (empty mask, fewer than 2 images, ...) and is ignored by the summary;
- the model's training flags are restored after use, the model's weights are never changed.
"""

from __future__ import annotations

from medbundle.explain.measures.attention import attention_statistics
from medbundle.explain.measures.deletion_insertion import deletion_insertion
from medbundle.explain.measures.localisation import (
    localisation_scores,
    pointing_game,
    random_baseline_localisation,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    saliency_auprc,
)
from medbundle.explain.measures.randomisation import cascading_randomisation
from medbundle.explain.measures.shortcuts import anatomy_shortcut_scores, blank_inside, blank_outside, mass_inside
from medbundle.explain.measures.stability import stability
from medbundle.explain.measures.summary import summarise

__all__ = [
    "pointing_game",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "saliency_auprc",
    "localisation_scores",
    "random_baseline_localisation",
    "stability",
    "cascading_randomisation",
    "deletion_insertion",
    "attention_statistics",
    "blank_outside",
    "blank_inside",
    "anatomy_shortcut_scores",
    "mass_inside",
    "summarise",
]
