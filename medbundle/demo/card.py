"""The bundle's model card as the page shows it: :func:`medbundle.serving.model_card` plus the card section of the
bundle's ``docs/README.md`` (the measured figures with their 95 % intervals)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from medbundle.serving import model_card

__all__ = ["card_figures", "card_markdown", "docs_card_section"]


def docs_card_section(docs: str | os.PathLike | None) -> str | None:
    """The ``## ...model card...`` section of a bundle's ``docs/README.md`` (up to the next ``## `` heading), or None
    where there is no such file or section."""
    if not docs or not Path(docs).is_file():
        return None
    text = Path(docs).read_text(encoding="utf-8")
    match = re.search(r"^## [^\n]*model card[^\n]*\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M | re.I)
    return match.group(1).strip() if match else None


def _figure(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def card_figures(section: str, docs_dir: Path) -> tuple[str, list[tuple[Path, str]]]:
    """``(text, figures)``: ``section`` with its Markdown images taken out, and ``(file, caption)`` of each one that
    is a file of ``docs_dir``. A relative image link in page Markdown would point at the web server, which does not
    serve the bundle's files; the page shows the figures themselves instead. An image that is not such a file (a
    web address, a missing file) leaves its caption in the text."""
    figures: list[tuple[Path, str]] = []

    def take(match: re.Match) -> str:
        caption, target = match.group(1), match.group(2)
        try:
            path = (docs_dir / target).resolve()
            inside = "://" not in target and path.is_file() and docs_dir.resolve() in path.parents
        except (OSError, RuntimeError):  # a link that loops
            inside = False
        if inside:
            figures.append((path, caption))
            return ""
        return f"*({caption})*"

    text = re.sub(r'!\[([^\]]*)\]\(([^)\s]+)(?:\s+"[^"]*")?\)', take, section)  # ![caption](file "title")
    return re.sub(r"\n{3,}", "\n\n", text).strip(), figures


def card_markdown(bundle_root: str | os.PathLike) -> tuple[dict[str, Any], str, list[tuple[Path, str]]]:
    """``(card, markdown, figures)``: the model card of the bundle at ``bundle_root``, its text for the page and the
    figures of its docs section (``(file, caption)``, shown by the page under the text).

    The text has the task, data, intended use, classes, the ``eval_metrics`` figures with what they were measured on,
    the bundle's own card section (intervals) where its docs have one, and the research-only disclaimer.
    """
    card = model_card(bundle_root)
    lines = [f"**{card.get('name') or card['bundle']}** (bundle `{card['bundle']}`, version {card.get('version')})", ""]
    for key, title in (("task", "Task"), ("data_source", "Data"), ("intended_use", "Intended use")):
        if card.get(key):
            lines += [f"**{title}:** {card[key]}", ""]
    if card.get("classes"):
        lines += [f"**Classes:** {', '.join(map(str, card['classes']))}", ""]
    if card.get("figures"):
        lines += ["| figure | value |", "|---|---|"]
        lines += [f"| {k} | {_figure(v)} |" for k, v in card["figures"].items()]
        lines += [""]
        if card.get("figures_note"):
            lines += [f"*Measured on:* {card['figures_note']}", ""]
    section = docs_card_section(card.get("docs"))
    figures: list[tuple[Path, str]] = []
    if section:
        section, figures = card_figures(section, Path(card["docs"]).parent)
        lines += [f"**From the bundle's documentation** (`{Path(card['docs']).name}`, with 95 % intervals):", "",
                  section, ""]
    elif card.get("docs"):
        lines += [f"Full card: `{card['docs']}`", ""]
    lines += [f"**{card['disclaimer']}**"]
    return card, "\n".join(lines), figures
