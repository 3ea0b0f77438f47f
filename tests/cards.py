"""A model card complete under every card policy (title, intended use, training data, evaluation, limitations,
license), for the tests that push models and do not test cards themselves."""

from __future__ import annotations


def complete_card(title: str = "m", *, license: str = "cc-by-4.0", tags: str | None = None, body: str = "",
                  metadata: str = "") -> str:
    """The card as Markdown. `tags`: the YAML list's inside (`"x, y"`); `body`: the paragraph under the title (the
    model's description); `metadata`: more front-matter lines, each ending in a newline."""
    front = f"license: {license}\n" + (f"tags: [{tags}]\n" if tags is not None else "") + metadata
    description = f"{body}\n\n" if body else ""
    return f"""---
{front}---

# {title}

{description}## Intended use

Tests.

## Training data

Synthetic.

## Evaluation

| metric | value |
|---|---|
| accuracy | 0.9 |

## Limitations

None known.
"""
