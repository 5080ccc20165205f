"""The test suite's own rules, read from the test files (so they hold without running the slow tests):

- a test that reads ``../shared/data`` (``SHARED_DATA``, or a module constant made from it) is marked ``realdata``;
- a test that starts a bundle command (``run_bundle``, ``python -m monai.bundle`` / ``medbundle.explain`` /
  ``medbundle.compare``), itself or through a fixture that does (``trained``, module fixtures calling ``run_bundle``),
  is marked ``slow``. ``conftest.py`` also checks this while the tests run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import BUNDLE_COMMANDS

TESTS = Path(__file__).resolve().parent
SESSION_FIXTURES_THAT_RUN_BUNDLES = {"trained"}  # conftest.py


def _marks(decorators: list[ast.expr]) -> set[str]:
    """Names ``x`` of ``@pytest.mark.x`` / ``@pytest.mark.x(...)`` decorators."""
    out = set()
    for d in decorators:
        d = d.func if isinstance(d, ast.Call) else d
        if isinstance(d, ast.Attribute) and ast.unparse(d.value) == "pytest.mark":
            out.add(d.attr)
    return out


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _starts_bundle(node: ast.AST) -> bool:
    """``run_bundle`` called, or ``"-m", "<bundle command>"`` in a list or tuple (a command line)."""
    for seq in (n for n in ast.walk(node) if isinstance(n, (ast.List, ast.Tuple))):
        values = [e.value if isinstance(e, ast.Constant) else None for e in seq.elts]
        if any(a == "-m" and b in BUNDLE_COMMANDS for a, b in zip(values, values[1:])):
            return True
    return "run_bundle" in _names(node)


def _is_fixture(node: ast.FunctionDef) -> bool:
    return any("fixture" in ast.unparse(d) for d in node.decorator_list)


def _module_rules(source: str, name: str) -> list[str]:
    """The rules broken by the test file ``name`` with text ``source``, one line each."""
    tree = ast.parse(source)
    module_marks, shared, bundle_fixtures = set(), {"SHARED_DATA"}, set(SESSION_FIXTURES_THAT_RUN_BUNDLES)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets):
            value = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            module_marks |= _marks(value)
        elif isinstance(node, ast.Assign) and _names(node.value) & shared:
            shared |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    for node in tree.body:  # module fixtures that run bundles, or use fixtures that do (in file order)
        if isinstance(node, ast.FunctionDef) and _is_fixture(node):
            if _starts_bundle(node) or {a.arg for a in node.args.args} & bundle_fixtures:
                bundle_fixtures.add(node.name)
    problems = []
    for node in tree.body:
        if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
            continue
        marks = module_marks | _marks(node.decorator_list)
        where = f"{name}::{node.name}"
        if _names(node) & shared and "realdata" not in marks:
            problems.append(f"{where} reads ../shared/data but is not marked realdata")
        uses = {a.arg for a in node.args.args} & bundle_fixtures
        if (_starts_bundle(node) or uses) and "slow" not in marks:
            problems.append(f"{where} starts a bundle command{f' (through {sorted(uses)})' if uses else ''} "
                            "but is not marked slow")
    return problems


@pytest.mark.parametrize("path", sorted(TESTS.rglob("test_*.py")), ids=lambda p: str(p.relative_to(TESTS)))
def test_markers_follow_the_rules(path):
    assert _module_rules(path.read_text(), str(path.relative_to(TESTS))) == []


def test_the_rules_catch_unmarked_tests():
    """The checker itself: an unmarked test of each kind is reported, a marked one is not."""
    problems = _module_rules(
        "import pytest\nfrom conftest import SHARED_DATA, run_bundle\nDATA = SHARED_DATA / 'x'\n\n"
        "@pytest.fixture(scope='module')\ndef run(tmp_path_factory):\n    return run_bundle('c.json')\n\n"
        "def test_a():\n    assert DATA\n\n@pytest.mark.realdata\ndef test_b():\n    assert DATA\n\n"
        "def test_c(trained):\n    pass\n\ndef test_d(run):\n    pass\n\n"
        "def test_e():\n    import subprocess\n    subprocess.run(['python', '-m', 'medbundle.compare'])\n\n"
        "@pytest.mark.slow\ndef test_f(run, trained):\n    pass\n",
        "probe.py",
    )
    assert [p.split("::")[1].split(" ")[0] for p in problems] == ["test_a", "test_c", "test_d", "test_e"], problems
