"""medbundle.external: the external_dir key, the comparison with the internal test split, and copies of training
images left out of external figures (the slow bundle test runs the whole path: tests/bundles/test_chest_bundle.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from medbundle.errors import OptionError
from medbundle.external import ExternalEvaluation, _markdown, compare_sets, external_sets

sys.path.insert(0, str(Path(__file__).resolve().parent / "audit"))
from audit_images import picture, resized, save, trimmed  # noqa: E402

CLASSES = ["COVID-19", "Pneumonia", "Normal"]


def test_external_dir_takes_a_path_a_list_and_dicts_with_options():
    assert external_sets(None) == [] and external_sets("") == [] and external_sets([]) == []
    one = external_sets("/data/hospital_b")
    assert one == [{"name": "hospital_b", "path": "/data/hospital_b", "options": {}}]
    two = external_sets(["/a/x", {"path": "/b/fig1", "name": "figure1", "label_column": "finding"}])
    assert [s["name"] for s in two] == ["x", "figure1"] and two[1]["options"] == {"label_column": "finding"}


@pytest.mark.parametrize("bad,words", [([{"name": "x"}], "neither a path"), ([3], "neither a path"),
                                       ([{"path": "/a", "colour": 1}], "unknown option(s) ['colour']"),
                                       (["/a/x", "/b/x"], "two sets are named 'x'")])
def test_bad_external_dir_entries_are_one_line_errors(bad, words):
    with pytest.raises(OptionError, match=None) as e:
        external_sets(bad)
    assert words in str(e.value) and "\n" not in str(e.value)


def _fig(value, lo, hi):
    return {"value": value, "lo": lo, "hi": hi}


def test_the_comparison_states_the_drop_from_internal_to_external():
    internal = {"name": "internal test", "n": 500, "accuracy": _fig(0.95, 0.93, 0.97),
                "auc_macro_ovr": _fig(0.99, 0.98, 1.0),
                "sensitivity": {"COVID-19": _fig(0.97, 0.94, 0.98), "Pneumonia": _fig(0.9, 0.85, 0.94), "Normal": None},
                "specificity": {}, "support": {"COVID-19": 250, "Pneumonia": 125, "Normal": 125}}
    external = {**internal, "name": "figure1", "n": 40, "accuracy": _fig(0.7, 0.55, 0.82),
                "sensitivity": {"COVID-19": _fig(0.8, 0.64, 0.9), "Pneumonia": None, "Normal": None},
                "support": {"COVID-19": 35, "Pneumonia": 2, "Normal": 3}, "training_copies_left_out": ["a.png"]}
    comparison = compare_sets(internal, [external], CLASSES)
    drop = comparison["external"][0]["drop"]
    assert drop["accuracy"] == pytest.approx(-0.25) and drop["sensitivity"]["COVID-19"] == pytest.approx(-0.17)
    assert drop["sensitivity"]["Pneumonia"] is None and drop["auc_macro_ovr"] == pytest.approx(0.0)
    md = _markdown(comparison)
    assert "0.700 [0.550, 0.820]" in md and "accuracy -0.250" in md and "sensitivity COVID-19 -0.170" in md
    assert "1 images left out as near duplicates" in md


def test_external_copies_of_training_images_are_left_out(tmp_path):
    train = [{"image": str(save(tmp_path / "train" / f"t{i}.png", picture(i))), "label": 0} for i in range(6)]
    external = [{"image": str(save(tmp_path / "ext" / "copy.jpg", resized(trimmed(picture(2), 0.03, 0.02), 180, 210),
                                   quality=80)), "id": "copy.jpg", "label": 0},
                {"image": str(save(tmp_path / "ext" / "new.png", picture(99))), "id": "new.png", "label": 0}]
    entry = {"name": "ext", "path": str(tmp_path / "ext"), "options": {}}

    def evaluation(**kwargs):
        return ExternalEvaluation(None, str(tmp_path / "eval"), CLASSES, network=None, transform=None, inferer=None,
                                  postprocessing=None, device="cpu", training_items=train, **kwargs)

    kept, dropped = evaluation().drop_training_copies(entry, external)
    assert [i["id"] for i in kept] == ["new.png"] and dropped == ["copy.jpg"]
    kept, dropped = evaluation(exclude_training_copies="false").drop_training_copies(entry, external)
    assert len(kept) == 2 and dropped == []


def test_an_external_set_that_does_not_exist_names_the_key(tmp_path):
    from medbundle.data.errors import DataError

    evaluation = ExternalEvaluation([str(tmp_path / "nowhere")], str(tmp_path), CLASSES, network=None, transform=None,
                                    inferer=None, postprocessing=None, device="cpu")
    with pytest.raises(DataError) as e:
        evaluation.load(evaluation.sets[0])
    assert "--external_dir" in str(e.value) and "nowhere" in str(e.value) and "\n" not in str(e.value)
