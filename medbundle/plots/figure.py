"""Figure helpers shared by every plot: a standalone Agg figure, an atomic PNG writer, label wrapping, colours.

Plots use matplotlib's object-oriented API (:class:`matplotlib.figure.Figure` with an explicit
Agg canvas): nothing touches ``pyplot`` or the global backend, so they are safe to call on
headless machines and from processes that also use ``pyplot`` interactively. Every PNG is
written through :func:`medbundle.utils.atomic_write`, so a process killed while writing leaves
the previous file (or none), never a truncated one.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from medbundle.utils import atomic_write

__all__ = ["agg_figure", "save_png", "wrap_label"]

_DPI = 130


@contextlib.contextmanager
def agg_figure(**kwargs: Any) -> Iterator[Any]:
    """A standalone matplotlib Agg figure (no pyplot, no global backend change), cleared on exit.

    Args:
        kwargs: passed to :class:`matplotlib.figure.Figure` (``figsize``, ``layout``...).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    try:
        yield fig
    finally:
        fig.clear()


def save_png(fig: Any, path: str | os.PathLike, dpi: int = 130) -> None:
    """Save a matplotlib figure as PNG to ``path`` atomically (tight bounding box)."""
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")


def wrap_label(name: Any, width: int = 18) -> str:
    """Wrap a (class) name onto lines of at most ``width`` characters for plot labels."""
    import textwrap

    return textwrap.fill(str(name), width=width, break_long_words=True) or str(name)


def _percent_formatter() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=0)


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
