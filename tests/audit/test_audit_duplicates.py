"""medbundle.audit.duplicates and alignment: copies resized, trimmed and re-encoded are found, unrelated pictures are
not, and the clusters join what belongs together."""

from __future__ import annotations

import numpy as np
import pytest
from audit_images import picture, resized, save, trimmed

from medbundle.audit import aligned_correlation, find_duplicates, hash_images, near_duplicate_clusters
from medbundle.audit.alignment import MIN_DETAIL, MIN_RAW
from medbundle.audit.duplicates import clusters_from_pairs


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """An original, its copies (resized to a square JPEG, trimmed, both), exact copies, and unrelated pictures."""
    folder = tmp_path_factory.mktemp("copies")
    original = picture(10)
    paths = {
        "original": save(folder / "original.png", original),
        "square_jpeg": save(folder / "square.jpg", resized(original, 224, 224), quality=70),
        "trimmed": save(folder / "trimmed.png", resized(trimmed(original, 0.04, 0.04, 0.04, 0.04), 256, 256)),
        "trimmed_top_jpeg": save(folder / "top.jpg", trimmed(original, top=0.08), quality=80),
        "same_bytes": folder / "same_bytes.png",
        "same_pixels": save(folder / "same_pixels.tif", original),
    }
    paths["same_bytes"].write_bytes(paths["original"].read_bytes())
    for seed in range(20, 32):  # unrelated pictures
        paths[f"other{seed}"] = save(folder / f"other{seed}.png", picture(seed))
    names = list(paths)
    return names, hash_images([paths[n] for n in names], progress=False)


def _pairs(names, pairs) -> dict[frozenset, str]:
    return {frozenset((names[a], names[b])): kind for a, b, kind in zip(pairs["a"], pairs["b"], pairs["kind"])}


def test_every_copy_is_found_and_nothing_else(copies):
    names, table = copies
    found = _pairs(names, find_duplicates(table))
    assert found[frozenset(("original", "same_bytes"))] == "exact_file"
    assert found[frozenset(("original", "same_pixels"))] == "exact_pixels"
    assert found[frozenset(("original", "square_jpeg"))] == "near"
    assert {found.get(frozenset(("original", c))) for c in ("trimmed", "trimmed_top_jpeg")} <= {"near", "near_crop"}
    assert frozenset(("original", "trimmed")) in found and frozenset(("original", "trimmed_top_jpeg")) in found
    assert not [p for p in found if any(n.startswith("other") for n in p)]
    # exact duplicates are searched once: no near pair names the second and third copy of the original
    assert not [p for p in found if p & {"same_bytes", "same_pixels"} and found[p].startswith("near")]


def test_trimmed_copies_need_the_aligned_check(copies):
    names, table = copies
    found = _pairs(names, find_duplicates(table, crop_neighbours=0, sure_distance=20, max_distance=20))
    assert frozenset(("original", "trimmed")) not in found  # the hash alone moved too far
    assert frozenset(("original", "square_jpeg")) in found


def test_clusters_join_copies_and_leave_others_alone(copies):
    names, table = copies
    clusters = near_duplicate_clusters(table)
    copy_names = ("original", "square_jpeg", "trimmed", "trimmed_top_jpeg", "same_bytes", "same_pixels")
    assert len({clusters[names.index(n)] for n in copy_names}) == 1
    others = [clusters[i] for i, n in enumerate(names) if n.startswith("other")]
    assert len(set(others)) == len(others) and clusters[names.index("original")] not in others
    assert clusters[0] == 0 and sorted(set(clusters)) == list(range(len(set(clusters))))


def test_near_duplicate_clusters_takes_paths(tmp_path):
    a = save(tmp_path / "a.png", picture(40))
    b = save(tmp_path / "b.jpg", resized(picture(40), 200, 180), quality=80)
    c = save(tmp_path / "c.png", picture(41))
    assert near_duplicate_clusters([a, c, b]) == [0, 1, 0]


def test_clusters_from_pairs_follow_chains():
    assert clusters_from_pairs(6, [(4, 5), (1, 4), (0, 2)]) == [0, 1, 0, 2, 1, 1]
    assert clusters_from_pairs(3, []) == [0, 1, 2]


def test_aligned_correlation_tells_a_trimmed_copy_from_a_lookalike():
    import cv2

    original = picture(50)
    thumb = resized(original, 64, 64)
    copy = resized(trimmed(original, 0.1, 0.0, 0.03, 0.0), 64, 64)
    raw, detail = aligned_correlation(thumb, copy)
    assert raw >= MIN_RAW and detail >= MIN_DETAIL
    # a lookalike: the same smooth anatomy, other fine detail
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(original.astype(np.float32), (0, 0), 6)
    lookalike = np.clip(smooth + 25 * rng.standard_normal(original.shape), 0, 255).astype(np.uint8)
    raw, detail = aligned_correlation(thumb, resized(lookalike, 64, 64))
    assert detail < MIN_DETAIL
    assert aligned_correlation(np.zeros((64, 64), np.uint8), np.zeros((64, 64), np.uint8)) == (1.0, 1.0)


def test_bad_distances_are_refused(copies):
    _, table = copies
    with pytest.raises(ValueError, match="sure_distance 30, max_distance 20"):
        find_duplicates(table, max_distance=20, sure_distance=30)
