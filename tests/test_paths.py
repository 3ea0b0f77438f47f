"""File names inside a version: only names every client can write to disk and fetch back by URL (issue 12, item 9)."""

from __future__ import annotations

import io

import pytest

from zoo_core.errors import ZooError
from zoo_core.registry.service import RegistryService
from zoo_core.registry.types import check_path, check_tree
from zoo_core.remote import _info

FINE = ("model.safetensors", "README.md", "onnx/model.onnx", "tokenizer/vocab.txt", "données.json", "模型.bin",
        "a b.txt", "v1.0/weights-%20.bin")
REFUSED = {
    ".": "'.' or '..' parts", "./model.bin": "'.' or '..' parts", "a/./b": "'.' or '..' parts",
    "a//b": "empty", "dir/": "empty", "../escape": "'..'", "/etc/passwd": "inside the version folder",
    "bad\x00name": "a control character (U+0000)", "tab\tname": "U+0009", "c1\x85name": "U+0085",
    "back\\slash": "REVERSE SOLIDUS", "page#2.bin": "NUMBER SIGN", "what?.bin": "QUESTION MARK",
    "report\u202etxt.exe": "RIGHT-TO-LEFT OVERRIDE", "zero\u200bwidth.bin": "ZERO WIDTH SPACE",
    "bom\ufeff.bin": "ZERO WIDTH NO-BREAK SPACE", "ｍodel.safetensors": "model.safetensors",  # fullwidth m
    "cafe\u0301.json": "café.json",  # a decomposed accent beside the composed one
    "": "empty", "x" * 256: "longer than 255",
}


@pytest.mark.parametrize("name", FINE)
def test_ordinary_names_are_accepted(name):
    assert check_path(name) == name


@pytest.mark.parametrize("name,reason", REFUSED.items(), ids=[repr(n)[:30] for n in REFUSED])
def test_names_a_client_could_not_write_or_fetch_are_refused_with_the_reason(name, reason):
    with pytest.raises(ZooError, match="not allowed") as error:
        check_path(name)
    assert reason in str(error.value)


def test_a_version_cannot_hold_a_file_where_another_files_folder_is_or_names_equal_but_for_case():
    check_tree(["a/b", "a/c", "ab", "A.txt.bak", "a.txt"])
    with pytest.raises(ZooError, match="'x' is both a file and the folder of another file"):
        check_tree(["x", "x/y"])
    with pytest.raises(ZooError, match="'x/y' is both a file and the folder"):
        check_tree(["x/y/z", "x/y"])
    with pytest.raises(ZooError, match="'README.md' and 'readme.md' differ only in case"):
        check_tree(["README.md", "readme.md"])


def test_publishing_such_a_tree_stores_no_version(tmp_path):
    service = RegistryService(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "blobs")
    try:
        files = [service.store_file(io.BytesIO(b"one"), "x"), service.store_file(io.BytesIO(b"two"), "x/y")]
        with pytest.raises(ZooError, match="both a file and the folder"):
            service.publish("acme/clash", files, status="draft")
        with pytest.raises(ZooError, match="not found"):
            service.resolve("acme/clash")
    finally:
        service.engine.dispose()


def test_the_client_refuses_a_server_listing_files_it_cannot_write():
    version = {"model_id": "acme/m", "number": 1, "status": "published", "commit": "a" * 40,
               "created_at": "2026-01-01T00:00:00Z", "created_by": None, "backbone": None, "family": None,
               "strategy": None, "metrics": {}, "aliases": [],
               "files": [{"path": "x", "size": 1, "sha256": "0" * 64}, {"path": "x/y", "size": 1, "sha256": "1" * 64}]}
    with pytest.raises(ZooError, match="the registry sent files that cannot be written"):
        _info(version)
    version["files"] = [{"path": "report\u202etxt.exe", "size": 1, "sha256": "0" * 64}]
    with pytest.raises(ZooError, match="unsafe file path"):
        _info(version)


def test_caps_on_files_description_and_tags_store_no_version(tmp_path, monkeypatch):
    from zoo_core.errors import ContentError
    from zoo_core.registry import types

    monkeypatch.setattr(types, "MAX_FILES", 3)  # the real cap is 10,000 files: the same check, fewer blobs
    service = RegistryService(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "blobs")
    try:
        files = [service.store_file(io.BytesIO(str(i).encode()), f"f{i}.bin") for i in range(4)]
        with pytest.raises(ContentError, match="at most 3 files; this one has 4"):
            service.publish("acme/many", files, status="draft")
        with pytest.raises(ContentError, match="the description is 10,001 characters; at most 10,000"):
            service.publish("acme/long", files[:1], description="x" * 10_001)
        with pytest.raises(ContentError, match="101 tags"):
            service.publish("acme/tags", files[:1], tags=[f"t{i}" for i in range(101)])
        with pytest.raises(ContentError, match="longer than 100 characters"):
            service.publish("acme/tags", files[:1], tags=["t" * 101])
        assert service.search()["total"] == 0
        assert service.publish("acme/fine", files[:3], description="ok", tags=["a"]).number == 1
    finally:
        service.engine.dispose()
