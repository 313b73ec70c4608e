"""Wording shared by the command line and the HTTP API."""

from __future__ import annotations

import difflib
from collections.abc import Sequence


def article(word: str) -> str:
    return f"an {word}" if word[:1].lower() in tuple("aeiou") else f"a {word}"


def name_hint(name: str, names: Sequence[str]) -> str:
    """'; did you mean X?' for a close match among ``names``, else what there is."""
    by_lower = {n.lower(): n for n in names}
    close = [by_lower[n] for n in difflib.get_close_matches(name.lower(), list(by_lower), n=3)]
    if close:
        return f"; did you mean {' or '.join(close)}?"
    if names:
        return f"; it defines {', '.join(names)}"
    return "; it defines none"
