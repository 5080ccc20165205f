"""The one-line error for a config key whose value is not one of the known choices."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def check_choice(value: object, choices: Iterable[str], key: str) -> str:
    """``value`` lower-cased when it is one of ``choices``.

    Raises:
        ValueError: naming the key, the choices and the closest one.
    """
    choices = list(choices)
    name = str(value).strip().lower()
    if name not in choices:
        close = difflib.get_close_matches(name, choices, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"{key} {value!r} is not one of {choices}{hint}. Set --{key} to one of them.")
    return name
