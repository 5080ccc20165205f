"""A Python file as a fresh module: ``scripts/<name>.py`` for tests of the scripts' functions and argument checks, or
any file that is not imported through its package."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_file(path: Path, name: str) -> ModuleType:
    """The Python file ``path`` executed as a fresh module named ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` executed as a fresh module named ``name``."""
    return load_file(SCRIPTS / f"{name}.py", name)
