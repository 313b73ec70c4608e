"""Small text helpers shared by the commands' output."""

from __future__ import annotations

from collections.abc import Sequence


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe(exc: BaseException) -> str:
    return one_line(f"{type(exc).__name__}: {exc}")


def count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def columns(rows: Sequence[Sequence[str]], rule: bool = False) -> list[str]:
    """The rows as lines of left-aligned columns, two spaces apart (the first row is the
    header: every row has its length); ``rule`` underlines the header with dashes."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]
    if rule:
        lines.insert(1, "  ".join("-" * width for width in widths))
    return lines
