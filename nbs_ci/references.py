"""Where each notebook's gates come from: `references.md` beside the manifest, one section each.

The manifest stays declarative (budgets, parameters, gates); the long texts that say what was
measured, how, and why each threshold sits where it does live in markdown:

    ## 01_cnn_fundamentals

    LeNet-5 reaches about 99% test accuracy on MNIST (LeCun et al., 1998: 0.95% error); smoke
    measured 0.9812 ...

A section is a `## NAME` heading (NAME a manifest entry) and the text under it, wrapped at
`WIDTH` columns; reading joins each paragraph's lines with spaces. Text before the first heading
is the file's own introduction and belongs to no notebook.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

FILENAME = "references.md"
WIDTH = 100
HEADING = "## "


def references_path(manifest: Path) -> Path:
    """The references file that goes with `manifest` (same folder)."""
    return Path(manifest).with_name(FILENAME)


def parse_references(text: str) -> tuple[dict[str, str], list[str]]:
    """Notebook name -> reference text, and the problems found (duplicate or empty sections)."""
    sections: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    problems: list[str] = []
    current: list[str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith(HEADING):
            if current is not None:
                current.append(line)
            continue
        name = line[len(HEADING) :].strip()
        if name in sections:
            problems.append(f"line {number}: section {name!r} repeats line {first_line[name]}")
        first_line.setdefault(name, number)
        current = sections.setdefault(name, [])
    found = {name: _unwrap(lines) for name, lines in sections.items()}
    problems += [
        f"line {first_line[name]}: section {name!r} has no text"
        for name, t in found.items()
        if not t
    ]
    return found, problems


def _unwrap(lines: list[str]) -> str:
    """Paragraphs (split by blank lines) with each one's lines joined by single spaces."""
    paragraphs, current = [], []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    return "\n\n".join(paragraphs)


def read_references(path: Path) -> tuple[dict[str, str], list[str]]:
    """The references in `path` and their problems, each prefixed with the file; none if absent."""
    path = Path(path)
    if not path.is_file():
        return {}, []
    found, problems = parse_references(path.read_text(encoding="utf-8"))
    return found, [f"{path}, {p}" for p in problems]


def format_references(references: dict[str, str], intro: str = "") -> str:
    """The markdown of `references` (in the given order), each paragraph wrapped at WIDTH.

    Raises ValueError when a text would not read back unchanged (a wrapped line would start a
    heading, or the text holds line breaks inside a paragraph or runs of spaces).
    """
    parts = [intro.strip()] if intro.strip() else []
    for name, text in references.items():
        paragraphs = [
            textwrap.fill(p, WIDTH, break_long_words=False, break_on_hyphens=False)
            for p in text.split("\n\n")
        ]
        parts.append(f"{HEADING}{name}\n\n" + "\n\n".join(paragraphs))
    markdown = "\n\n".join(parts) + "\n"
    back, problems = parse_references(markdown)
    if problems or back != references:
        changed = sorted(n for n in references if back.get(n) != references[n])
        raise ValueError(f"these references would not read back unchanged: {changed or problems}")
    return markdown
