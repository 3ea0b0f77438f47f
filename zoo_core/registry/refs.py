"""Model references: `acme/pneumonia-resnet18`, `acme/x@3`, `acme/x@v3`, `acme/x@production`, `acme/x@<commit>`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from zoo_core.errors import ZooError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")  # fullmatch: `$` would let a trailing newline in
ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,47}")


@dataclass(frozen=True)
class ModelRef:
    namespace: str
    name: str
    revision: str | None = None  # None: latest

    @property
    def model_id(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return self.model_id + (f"@{self.revision}" if self.revision else "")


MAX_NAMESPACE = 64  # the namespace table's column; a model's name may be longer (96)


def check_name(value: str, what: str, limit: int = 96) -> str:
    if not NAME.fullmatch(value) or ".." in value or len(value) > limit:
        raise ZooError(f"{what} {value[:100]!r} is not valid: use letters, digits, '.', '_' and '-', starting with a "
                       f"letter or digit, at most {limit} characters")
    return value


# the web catalog's own top-level pages: a namespace of that name would hide them (or be hidden by them)
RESERVED_NAMESPACES = frozenset({"api", "static", "docs", "redoc", "plugins", "compare", "search", "models"})


def check_namespace(value: str) -> str:
    check_name(value, "namespace", MAX_NAMESPACE)
    if value.lower() in RESERVED_NAMESPACES:
        raise ZooError(f"namespace '{value}' is reserved for the catalog's pages; choose another name")
    return value


def check_alias(value: str) -> str:
    if not ALIAS.fullmatch(value) or value.isdigit() or re.fullmatch(r"v\d+", value):
        raise ZooError(f"alias '{value}' is not valid: start with a letter; it must not look like a version "
                       "number (3 or v3)")
    return value


VERSION_NUMBER = re.compile(r"v?([0-9]{1,18})")  # ASCII digits only ("²".isdigit() is true), within a BIGINT


def revision_number(revision: str) -> int | None:
    """The version number a revision spells (`3`, `v3`), else None (an alias or a commit). A number too large for
    the database is 0, a version that never exists (SQLite once raised OverflowError: a 500)."""
    match = VERSION_NUMBER.fullmatch(revision)
    if match:
        return int(match.group(1))
    return 0 if re.fullmatch(r"v?[0-9]+", revision) else None


HEX = frozenset("0123456789abcdef")


def revision_key(revision: str) -> tuple[str, int | str]:
    """How a revision names a version, as the lookup's column and value: ("number", 3) for `3` or `v3`,
    ("commit", sha1) for 40 lowercase hex digits, else ("alias", name)."""
    number = revision_number(revision)
    if number is not None:
        return "number", number
    if len(revision) == 40 and set(revision) <= HEX:
        return "commit", revision
    return "alias", revision


def parse_ref(text: str) -> ModelRef:
    text = text.removeprefix("zoo:")
    model, _, revision = text.partition("@")
    namespace, sep, name = model.partition("/")
    if not sep or "/" in name:
        raise ZooError(f"model reference '{text}' must look like NAMESPACE/NAME[@VERSION|@ALIAS]")
    return ModelRef(check_name(namespace, "namespace", MAX_NAMESPACE), check_name(name, "model name"), revision or None)
