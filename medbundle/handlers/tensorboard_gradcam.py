"""Grad-CAM overlays of a few fixed validation images, written to TensorBoard during training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from ignite.engine import Engine, Events

from medbundle.explain.plots import overlay
from medbundle.explain.registry import get_explainer

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["TensorBoardGradCAM"]


class TensorBoardGradCAM:
    """Write Grad-CAM overlays of a few fixed validation images to TensorBoard during training.

    Every ``interval`` epochs (or, with ``validator``, after each validation: the grids then follow the
    validation metrics and cost nothing on epochs without one), the first ``n_images`` items of ``dataset`` are
    explained for their predicted class with the trainer's network and written as one image grid
    (``tag``, global step = epoch).

    Args:
        dataset: the validation dataset (items with ``image_key``).
        summary_writer: a TensorBoard ``SummaryWriter``.
        n_images: images shown.
        interval: epochs between two grids.
        target_layer: Grad-CAM layer; None finds the last spatial convolution.
        tag: TensorBoard tag.
        image_key: key of the image in the dataset items.
        validator: the validation evaluator; when given, a grid is written when it completes (``interval`` is
            then the validation's own).
    """

    def __init__(
        self,
        dataset: Sequence[dict],
        summary_writer: SummaryWriter,
        n_images: int = 4,
        interval: int = 1,
        target_layer: str | None = None,
        tag: str = "gradcam/validation",
        image_key: str = "image",
        validator: Engine | None = None,
    ) -> None:
        self.dataset = dataset
        self.writer = summary_writer
        self.n_images = n_images
        self.interval = interval
        self.target_layer = target_layer
        self.tag = tag
        self.image_key = image_key
        self.validator = validator

    def attach(self, engine: Engine) -> None:
        if self.validator is None:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)
        else:
            self.validator.add_event_handler(Events.COMPLETED, lambda _: self(engine))

    def __call__(self, engine: Engine) -> None:
        k = min(self.n_images, len(self.dataset))
        x = torch.stack([torch.as_tensor(self.dataset[i][self.image_key]) for i in range(k)]).float()
        # the network inside a DDP wrapper: a DDP forward on rank 0 alone would wait for the other ranks
        model = getattr(engine.network, "module", engine.network)
        x = x.to(next(model.parameters()).device)
        maps = get_explainer("gradcam", model, target_layer=self.target_layer)(x)
        pictures = [overlay(img[0].cpu().numpy(), m[0].cpu().numpy()) for img, m in zip(x, maps)]
        grid = torch.as_tensor(np.stack(pictures)).permute(0, 3, 1, 2)
        self.writer.add_images(self.tag, grid, engine.state.epoch, dataformats="NCHW")
        self.writer.flush()
