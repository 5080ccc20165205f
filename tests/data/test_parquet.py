"""medbundle.data.parquet: malformed parquet tables give clear DataErrors."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.data import CLASSES, write_hf_parquet

from medbundle.data import DataError, load_datalists


def test_malformed_parquet_gives_clear_errors(tmp_path):
    bad = tmp_path / "a"
    bad.mkdir()
    pq.write_table(pa.table({"img": pa.array([b"x"]), "label": pa.array([0])}), bad / "train.parquet")
    with pytest.raises(DataError, match=r"missing column\(s\) \['image'\].*--image_column"):
        load_datalists(bad, CLASSES)
    nobytes = tmp_path / "b"
    nobytes.mkdir()
    pq.write_table(pa.table({"image": pa.array([{"path": "p"}]), "label": pa.array([0])}), nobytes / "train.parquet")
    with pytest.raises(DataError, match="struct without a 'bytes' field"):
        load_datalists(nobytes, CLASSES)
    floats = tmp_path / "c"
    write_hf_parquet(floats / "train.parquet", [0, 1])
    pq.write_table(pq.read_table(floats / "train.parquet").set_column(1, "label", pa.array([0.5, 1.0])),
                   floats / "train.parquet")
    with pytest.raises(DataError, match="'label' holds double"):
        load_datalists(floats, CLASSES)
    out_of_range = tmp_path / "d"
    write_hf_parquet(out_of_range / "train.parquet", [0, 7])
    with pytest.raises(DataError, match="label 7 is outside 0..3"):
        load_datalists(out_of_range, CLASSES)
    corrupt = tmp_path / "e"
    write_hf_parquet(corrupt / "train.parquet", [0, 1, 2, 3] * 2)
    table = pq.read_table(corrupt / "train.parquet")
    images = pa.array([{"bytes": b"not a jpeg", "path": "x"}] * 8, type=table.column("image").type)
    pq.write_table(table.set_column(0, "image", images), corrupt / "train.parquet")
    with pytest.raises(DataError, match=r"(?s)8 of 8 image files cannot be read.*train.parquet#0: the image bytes cannot be decoded"):
        load_datalists(corrupt, CLASSES, val_fraction=0.25, test_fraction=0.25)
    junk = tmp_path / "f"
    junk.mkdir()
    (junk / "train.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable parquet file"):
        load_datalists(junk, CLASSES)
