"""What a search's words, metric filter and page mean, without SQLAlchemy: shared by the server's search
(queries.py, search_index.py) and the CLI's read-only answers on a local registry (lite.py), which must start in a
fraction of a second (importing SQLAlchemy alone costs 0.3 s of CPU)."""

from __future__ import annotations

import re

from zoo_core.errors import ZooError

WORDS = re.compile(r"[^\W_]+")  # what both engines' tokenizers call a word: letters and digits
# a word, or words joined by hyphens ("X-ray", "fine-tune", "state-of-the-art"), which both tokenizers split
TERMS = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
PLAIN = re.compile(r"[\w\s-]+")  # a query of words (and hyphens, which both engines read as spaces)
# the weight of a match in each field (name and namespace first, then the description, then the card)
SQLITE_WEIGHTS = "10.0, 5.0, 2.0, 1.0"
# SQLite's full-text matches of the bound parameter `fts` (`sqlite_match`) with their rank (lower is better)
SQLITE_HITS = (f"SELECT rowid AS model_id, bm25(model_search, {SQLITE_WEIGHTS}) AS rank FROM model_search "
               "WHERE model_search MATCH :fts")
# a metric filter's operators, as the names of Python's comparison methods
METRIC_OPS = {">=": "__ge__", "<=": "__le__", ">": "__gt__", "<": "__lt__", "=": "__eq__"}


def is_plain(query: str) -> bool:
    return bool(PLAIN.fullmatch(query)) and bool(WORDS.search(query))


def query_terms(query: str) -> list[list[str]]:
    """The query's terms, each as its words: a hyphenated term has several ("x-ray" -> ["x", "ray"])."""
    return [WORDS.findall(term) for term in TERMS.findall(query)]


def joined_forms(text: str) -> str:
    """The hyphenated words of `text` written as one ("X-ray fine-tune" -> "Xray finetune"): the index holds them
    beside the text, so that `xray` finds a card that says X-ray (both tokenizers read it as `x` and `ray`)."""
    return " ".join(dict.fromkeys(term.replace("-", "") for term in TERMS.findall(text) if "-" in term))


def sqlite_match(query: str) -> str:
    """An FTS5 MATCH expression: every term, as a quoted prefix (the user's text is never FTS5 syntax); a
    hyphenated term as its joined form or its words in a row ("x-ray": `xray` or `x ray`), a plain word also
    finding its hyphenated forms through the joined forms in the index (`joined_forms`). (FTS5 reads no implicit
    AND after a parenthesis.)"""
    return " AND ".join(f'"{words[0]}"*' if len(words) == 1 else f'("{"".join(words)}"* OR "{" ".join(words)}"*)'
                    for words in query_terms(query))


def pg_tsquery(query: str) -> str:
    """`sqlite_match`'s expression for PostgreSQL's to_tsquery."""
    return " & ".join(f"{words[0]}:*" if len(words) == 1 else f"({''.join(words)}:* | {' <-> '.join(words)}:*)"
                      for words in query_terms(query.lower()))


MAX_PAGE = 1_000_000


def check_page(page: int, per_page: int) -> None:
    """A page of results is numbered 1..MAX_PAGE and holds at least one (more than 200 are 200): a page of 1.6e22
    once overflowed SQLite's integers (a 500), and page 0 or a negative size were silently read as 1."""
    if not 1 <= page <= MAX_PAGE:
        raise ZooError(f"page must be between 1 and {MAX_PAGE:,}, not {page}")
    if per_page < 1:
        raise ZooError(f"a page holds at least one result (per_page or limit), not {per_page}")


def parse_metric(metric: str | None) -> tuple[str, str, float] | None:
    """`accuracy>=0.9` -> ("accuracy", ">=", 0.9), for search's metric filter."""
    if not metric:
        return None
    match = re.fullmatch(r"\s*([\w-]+)\s*(>=|<=|=|>|<)\s*([0-9.eE+-]+)\s*", metric)
    if not match:
        raise ZooError(f"metric filter '{metric}' must look like NAME>=VALUE (operators >=, <=, >, <, =)")
    return match.group(1), match.group(2), float(match.group(3))


def check_metric_op(op: str) -> None:
    if op not in METRIC_OPS:
        raise ZooError(f"metric filter operator must be one of {', '.join(METRIC_OPS)}")


def escape_like(text: str) -> str:
    """`text` for a LIKE pattern with `\\` as the escape character: its %, _ and \\ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
