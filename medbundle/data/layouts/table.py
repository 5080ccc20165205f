"""Layout 5: a metadata table (``metadata.csv``) with one row per image, its finding in a label column, as the
COVID-19 collections publish them.

- Figure1 (agchung/Figure1-COVID-chestxray-dataset): ``metadata.csv`` in cp1252, columns ``patientid``, ``finding``
  (``COVID-19``, ``Pneumonia``, ``No finding`` or blank), ``view``, ...; images ``images/<patientid>.<jpg|png>``:
  ``image_column="patientid"``, ``label_column="finding"``.
- ieee8023 covid-chestxray-dataset: ``metadata.csv`` in UTF-8, columns ``filename`` (in the ``images`` folder),
  ``finding`` (``Pneumonia/Viral/COVID-19``, ...), ``view`` (``PA``, ``AP``, ``AP Supine``, ``L``), ``patientid``:
  ``image_column="filename"``, ``label_column="finding"``, ``group_column="patientid"``,
  ``row_filter={"view": ["PA", "AP"]}``.

A finding becomes a class through ``finding_map`` (finding -> class name or alias; null: leave those rows out on
purpose), else when it is itself a class name or alias (matched ignoring case, spaces, ``_`` and ``-``). Rows with
a blank finding or one mapped to null are counted and listed in the log, never dropped silently; any other
finding is a :class:`~medbundle.data.errors.DataError` naming the findings and the fix. The table is read as UTF-8
(with or without BOM), else as cp1252; the log says which. Every row is training data (splits are made from it).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from medbundle.data.errors import DataError
from medbundle.data.files import IMAGE_SUFFIXES, _norm, _scan

__all__ = ["TABLE_ENCODINGS"]

logger = logging.getLogger("medbundle.data")

TABLE_ENCODINGS = ("utf-8-sig", "cp1252")  # tried in this order


def _read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The column names and rows of the CSV file ``path`` (UTF-8, else cp1252; logged)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e}). Fix its permissions or replace it.") from e
    for encoding in TABLE_ENCODINGS:
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise DataError(f"{path}: neither UTF-8 nor cp1252 text. Save the table as UTF-8 CSV.")
    logger.info("%s: read as %s%s", path, encoding, "" if encoding.startswith("utf") else " (it is not UTF-8)")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
        columns = [c.strip() for c in reader.fieldnames or []]
    except csv.Error as e:
        raise DataError(f"{path}: not a readable CSV table ({e}). Fix or replace the file.") from e
    return columns, rows


def _column(columns: list[str], name: str, key: str, path: Path) -> str:
    """The column of ``columns`` called ``name`` (ignoring case and surrounding spaces)."""
    found = {c.lower(): c for c in columns}
    if str(name).strip().lower() not in found:
        raise DataError(f"{path}: no column '{name}' (the table has {columns}). Set {key} to one of its columns.")
    return found[str(name).strip().lower()]


def _finding_classes(
    finding_map: Mapping[str, str | None] | None, class_names: list[str], class_keys: dict[str, int]
) -> dict[str, int | None]:
    """``finding_map`` with normalised findings and class indices (None: left out on purpose); checked."""
    if finding_map is not None and not isinstance(finding_map, Mapping):
        raise DataError(f"finding_map must map findings to class names (or null), not {finding_map!r}. Fix it.")
    out: dict[str, int | None] = {}
    for finding, name in (finding_map or {}).items():
        if name is not None and _norm(str(name)) not in class_keys:
            raise DataError(f"finding_map: '{finding}' -> '{name}', which is none of the classes {class_names} (nor "
                            "a class alias). Map it to a class name, or to null to leave those rows out.")
        key, label = _norm(str(finding)), None if name is None else class_keys[_norm(str(name))]
        if out.get(key, label) != label:
            raise DataError(f"finding_map: '{finding}' is given twice with different classes (case, spaces, '_' and "
                            "'-' are ignored). Keep one.")
        out[key] = label
    return out


def _filter_rows(rows: list[dict], row_filter: Mapping[str, Any] | None, columns: list[str], path: Path) -> list[dict]:
    """The rows whose values are among the allowed ones of ``row_filter`` (``{column: [values]}``); logs the rest."""
    if not row_filter:
        return rows
    if not isinstance(row_filter, Mapping):
        raise DataError(f"row_filter must map columns to lists of allowed values, not {row_filter!r}. Fix it.")
    allowed = {}
    for name, values in row_filter.items():
        values = [values] if isinstance(values, str) or values is None else values
        allowed[_column(columns, name, "row_filter", path)] = {_norm("" if v is None else str(v)) for v in values}
    kept, left = [], Counter()
    for row in rows:
        off = next(((c, row.get(c, "")) for c, ok in allowed.items() if _norm(row.get(c, "")) not in ok), None)
        if off is None:
            kept.append(row)
        else:
            left[off] += 1
    if left:
        listed = ", ".join(f"{c}='{v}' {n}" for (c, v), n in left.most_common())
        logger.info("%s: row_filter %s kept %d of %d rows (left out: %s)", path, dict(row_filter), len(kept),
                    len(rows), listed)
    return kept


def _image_finder(folder: Path) -> Callable[[str], Path | None]:
    """A function from a table value to the image file it names (None when none): a path relative to ``folder`` (or
    absolute), or a file name or stem in ``folder`` or its ``images`` folder, with any image suffix."""
    by_stem: dict[str, list[Path]] = {}
    dirs = [folder, *(d for d in _scan(folder)[1] if _norm(d.name) == "images")]
    for d in dirs:
        for f in _scan(d)[0]:
            suffix = next((s for s in IMAGE_SUFFIXES if f.name.lower().endswith(s)), None)
            if suffix:
                by_stem.setdefault(f.name[: len(f.name) - len(suffix)], []).append(f)

    def find(value: str) -> Path | None:
        if not value:
            return None
        for d in dirs:
            if (d / value).is_file():
                return d / value
        found = by_stem.get(value, [])
        if len(found) > 1:
            raise DataError(f"{folder}: the table's image '{value}' could be any of {[f.name for f in found]}. Keep "
                            "one of them, or give the file name with its suffix in the table.")
        return found[0] if found else None

    return find


def _from_table(
    folder: Path,
    root: Path,
    class_names: list[str],
    class_keys: dict[str, int],
    table_file: str,
    image_column: str,
    label_column: str,
    finding_map: Mapping[str, str | None] | None = None,
    row_filter: Mapping[str, Sequence[str]] | None = None,
    group_column: str | None = None,
    source_column: str | None = None,
) -> dict[str, list[dict]]:
    """Items ``{"image", "label", "id"[, "group"][, "source"]}`` of the rows of ``table_file`` in ``folder``.

    Args:
        folder: the folder holding the table.
        root: the dataset folder; ids are image paths relative to it.
        class_names: the classes.
        class_keys: normalised class names and aliases -> class index.
        table_file: the table's file name (matched ignoring case).
        image_column: column naming each row's image (a path relative to ``folder``, or a file name or stem in
            ``folder`` or its ``images`` folder).
        label_column: column of the findings.
        finding_map: finding -> class name or alias, or None to leave the finding's rows out on purpose.
        row_filter: column -> allowed values; other rows are left out (counted in the log).
        group_column: column of the patient, the item's ``"group"`` (for grouped splits).
        source_column: column of the item's ``"source"``.
    """
    path = next(f for f in _scan(folder)[0] if f.name.lower() == table_file.lower())
    columns, rows = _read_table(path)
    if not rows:
        raise DataError(f"{path}: the table has no rows. Add one row per image, or remove the file.")
    image_col = _column(columns, image_column, "image_column", path)
    label_col = _column(columns, label_column, "label_column", path)
    extra = {key: _column(columns, name, f"{key}_column", path)
             for key, name in (("group", group_column), ("source", source_column)) if name}
    findings = _finding_classes(finding_map, class_names, class_keys)
    rows = _filter_rows(rows, row_filter, columns, path)
    labelled, unmapped, unknown = [], {}, Counter()
    for row in rows:
        finding = row.get(label_col, "")
        key = _norm(finding)
        label = findings[key] if key in findings else class_keys.get(key) if finding else None
        if finding and key not in findings and key not in class_keys:
            unknown[finding] += 1
        elif label is None:
            reason = "a blank finding" if key not in findings else f"finding '{finding}' (finding_map: null)"
            unmapped.setdefault(reason, []).append(row.get(image_col, "") or "(blank)")
        else:
            labelled.append((row, label, finding))
    if unknown:
        raise DataError(
            f"{path}: findings in column '{label_col}' that are neither classes {class_names} nor in finding_map: "
            f"{dict(unknown.most_common())}. Add them to finding_map (finding -> class name, or null to leave their "
            "rows out on purpose)."
        )
    for reason, ids in unmapped.items():
        log = logger.warning if reason == "a blank finding" else logger.info
        log("%s: %d row(s) with %s map to no class, left out (first: %s)", path, len(ids), reason, ids[:5])
    mapped = Counter((finding, class_names[label]) for _, label, finding in labelled)
    logger.info("%s: %d of %d rows labelled: %s", path, len(labelled), len(rows),
                ", ".join(f"'{f}' -> {c} {n}" for (f, c), n in sorted(mapped.items())))
    if not labelled:
        raise DataError(f"{path}: none of its {len(rows)} rows (after row_filter) has a finding that maps to a class "
                        f"{class_names}. Map the findings of column '{label_col}' with finding_map.")
    return {"train": _items(path, root, labelled, image_col, extra)}


def _items(path: Path, root: Path, labelled: list[tuple[dict, int, str]], image_col: str,
           extra: dict[str, str]) -> list[dict]:
    """The items of the labelled rows; every image must exist and be named once."""
    find = _image_finder(path.parent)
    items, absent = [], []
    for row, label, _ in labelled:
        image = find(row.get(image_col, ""))
        if image is None:
            absent.append(row.get(image_col, "") or "(blank)")
            continue
        rel = os.path.relpath(image, root)
        item = {"image": str(image), "label": label, "id": image.as_posix() if rel.startswith("..") else
                Path(rel).as_posix()}
        item.update({key: row[column] for key, column in extra.items() if row.get(column)})
        items.append(item)
    if absent:
        raise DataError(
            f"{path}: {len(absent)} of {len(labelled)} rows name images that do not exist (first: {absent[:5]}). "
            f"Column '{image_col}' gives a path relative to {path.parent} or a file name or stem there or in its "
            "images folder: add the files, or leave those rows out (row_filter, finding_map null)."
        )
    twice = [i for i, n in Counter(item["id"] for item in items).items() if n > 1]
    if twice:
        raise DataError(f"{path}: {len(twice)} images are named by more than one row (first: {twice[:5]}). Keep one "
                        "row per image.")
    return items
