"""Tiny ignite/MONAI engines, models and stand-ins (DDP wrapper, slow writes, TensorBoard writer) shared by the
handler tests."""

from __future__ import annotations

import contextlib
import time

import torch
from ignite.engine import Engine
from torch import nn

import medbundle.handlers.checkpoint_saver as mb_checkpoint_saver


def _trainer(model: nn.Module, optimizer: torch.optim.Optimizer) -> Engine:
    """A real (tiny) training loop, so that model and optimizer states change every iteration."""
    torch.manual_seed(1)
    x, y = torch.randn(4, 3), torch.randn(4, 1)

    def step(engine, batch):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach()}

    return Engine(step)


def _model_and_opt(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Linear(3, 1)
    return model, torch.optim.Adam(model.parameters(), lr=0.01)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten())
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.backbone(x))


class _Wrapper(nn.Module):
    """Stands for DistributedDataParallel: the handler must forward ``.module``, never the wrapper."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x):
        raise AssertionError("the wrapper (DDP) was called: its forward would wait for the other ranks")


# the checkpoint saver's own atomic_write, before a test monkeypatches it
_ORIGINAL_ATOMIC_WRITE = mb_checkpoint_saver.atomic_write


def _atomic_write_after(before):
    """``atomic_write`` that first calls ``before(path)`` (in the writer's thread)."""

    @contextlib.contextmanager
    def write(path, mode="w", **kwargs):
        before(path)
        with _ORIGINAL_ATOMIC_WRITE(path, mode, **kwargs) as f:
            yield f

    return write


# ``atomic_write`` that takes 0.3 s longer: a background write is still going on when training goes on
_slow_atomic_write = _atomic_write_after(lambda path: time.sleep(0.3))


class _RecordingWriter:
    """A TensorBoard ``SummaryWriter`` stand-in that records its calls, in order."""

    def __init__(self):
        self.calls: list[tuple] = []

    def add_scalar(self, tag, value, step):
        self.calls.append(("scalar", tag, value, step))

    def add_images(self, tag, img_tensor, global_step=None, walltime=None, dataformats="NCHW"):
        self.calls.append(("images", tag, img_tensor, global_step, dataformats))

    def flush(self):
        self.calls.append(("flush",))

    @property
    def scalars(self) -> list[tuple[str, float, int]]:
        """``(tag, value, step)`` of the ``add_scalar`` calls."""
        return [(c[1], float(c[2]), c[3]) for c in self.calls if c[0] == "scalar"]

    @property
    def images(self) -> list[tuple]:
        """``(tag, img_tensor, global_step, dataformats)`` of the ``add_images`` calls."""
        return [c[1:] for c in self.calls if c[0] == "images"]

    @property
    def flushed(self) -> int:
        return sum(c == ("flush",) for c in self.calls)
