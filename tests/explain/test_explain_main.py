"""medbundle.explain's command line: the bundle argument named in one line when it is not a bundle."""

from __future__ import annotations

import pytest

from medbundle.explain.__main__ import bundle_root
from medbundle.runs.bundle import BUNDLES


def test_bundle_path_that_does_not_exist(tmp_path):
    missing = tmp_path / "no_such_bundle"
    with pytest.raises(SystemExit) as info:
        bundle_root(str(missing))
    message = str(info.value.code)
    assert message.startswith(f"{missing}: no such folder.") and "bundles/ct_infection" in message
    assert "ct_infection" in message.split("one of:")[-1] and "\n" not in message


def test_folder_that_is_not_a_bundle(tmp_path):
    with pytest.raises(SystemExit, match=r"not a medbundle bundle \(no configs/explain.json in it\)"):
        bundle_root(str(tmp_path))


def test_bundle_by_path_or_name():
    assert bundle_root(str(BUNDLES / "ct_infection")) == BUNDLES / "ct_infection"
    assert bundle_root("ct_infection") == BUNDLES / "ct_infection"
