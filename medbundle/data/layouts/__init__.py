"""The dataset layouts that :func:`medbundle.data.load_datalists` accepts, one module each, and their discovery.

- :mod:`~medbundle.data.layouts.mat`: ``Train.mat`` / ``Val.mat`` / ``Test.mat`` stacks, optional ``*_mask.mat``.
- :mod:`~medbundle.data.layouts.folders`: one sub-folder per class, optionally inside ``train``/``val``/``test``.
- :mod:`~medbundle.data.layouts.datalist`: ``datalist.csv`` or ``datalist.json``.
- :mod:`~medbundle.data.layouts.parquet`: Hugging Face parquet tables (``train-*.parquet``, ...).
- :mod:`~medbundle.data.layouts.discover`: which layout a folder shows, and the topmost folder showing one.

Each ``_from_<layout>`` function returns ``{split: [items]}`` for the splits the data provides.
"""

from __future__ import annotations

__all__: list[str] = []
