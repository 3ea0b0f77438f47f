"""Errors a user can cause. Each message says what was wrong and what would be right.

The CLI prints a `ZooError` as one line and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """A mistake in the user's input or environment, with a message fit to show as is."""


class UnknownNameError(ZooError, LookupError):
    """A name (backbone, strategy, reader, weight source, plugin, ...) that nothing registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind, self.name = kind, name
        self.known = sorted(known)
        self.suggestions = close_matches(name, self.known)
        message = f"unknown {kind} '{name}'"
        if self.suggestions:
            message += f"; did you mean {', '.join(self.suggestions)}?"
        elif self.known:
            shown = ", ".join(self.known[:12]) + (", ..." if len(self.known) > 12 else "")
            message += f"; known: {shown}"
        else:
            message += f"; no {kind} is registered"
        super().__init__(message)


class DuplicateNameError(ZooError):
    """Two plugins registered the same name for the same kind of thing."""


class WeightsError(ZooError):
    """Pretrained weights that cannot be found, fetched or fitted to the backbone."""


class DataError(ZooError):
    """A data set that is missing, corrupt or does not match what the recipe says."""


def close_matches(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Names in `known` that look like `name`: close spellings first, then names sharing its prefix."""
    known = list(known)
    matches = difflib.get_close_matches(name, known, n=n, cutoff=0.6)
    lowered = name.lower()
    for candidate in known:
        if len(matches) >= n:
            break
        if candidate not in matches and lowered and candidate.lower().startswith(lowered[:4]):
            matches.append(candidate)
    return matches
