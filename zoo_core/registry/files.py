"""Materialising a version's files locally: written aside, each checked by sha256, renamed into place."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from zoo_core.errors import ZooError


def file_sha256(path: Path) -> str:
    """A file's sha256, read a MiB at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def file_matches(path: Path, entry: dict[str, Any]) -> bool:
    """Whether a local file has the size and sha256 the registry lists for it."""
    if not path.is_file() or path.stat().st_size != entry["size"]:
        return False
    return file_sha256(path) == entry["sha256"]


def materialise(target: Path, files: list[dict[str, Any]], fetch: Callable[[dict[str, Any]], Iterable[bytes]]
                ) -> Path:
    """Write a version's files into `target` (reused when already complete), each checked by sha256; written
    aside and renamed, so an interrupted or corrupt download leaves nothing at `target`."""
    if folder_complete(target, files):
        return target
    tmp = target.with_name(f".{target.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for entry in files:
            out = tmp / entry["path"]
            out.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with out.open("wb") as handle:
                for chunk in fetch(entry):
                    digest.update(chunk)
                    handle.write(chunk)
            if digest.hexdigest() != entry["sha256"]:
                raise ZooError(f"'{entry['path']}' arrived corrupt (sha256 mismatch)")
        tmp.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        tmp.replace(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def folder_complete(folder: Path, files: list[dict[str, Any]]) -> bool:
    return folder.is_dir() and all(file_matches(folder / f["path"], f) for f in files)
