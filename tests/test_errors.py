"""Every error knows its meaning on the wire, and comes back from it as the same class (the server and the HTTP
client in between are tested in test_server.py and test_hf_hub.py)."""

from __future__ import annotations

import json

import pytest

import zoo_core.errors as errors
import zoo_core.registry.service  # noqa: F401  (its errors count too)
from zoo_core.errors import (
    EntryNotFoundError,
    ModelNotFoundError,
    UnknownAliasError,
    ZooError,
    error_classes,
    error_from_response,
)


def all_subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *all_subclasses(sub)]
    return found


def test_every_error_class_has_a_status_and_a_distinct_name():
    classes = [ZooError, *all_subclasses(ZooError)]
    assert len({c.__name__ for c in classes}) == len(set(classes)), "two error classes share a name"
    for cls in classes:
        assert 400 <= cls.status <= 599, cls
        assert cls.code in (None, "RepoNotFound", "RevisionNotFound", "EntryNotFound"), cls
    assert set(error_classes()) == {c.__name__ for c in classes}
    # one home: every error class of the core is defined in zoo_core/errors.py
    assert {c.__module__ for c in classes if c.__module__.startswith("zoo_core")} == {"zoo_core.errors"}


def example(cls: type[ZooError]) -> ZooError:
    if issubclass(cls, errors.UnknownNameError):
        return cls("alias of acme/x", "productoin", ["production", "staging"])
    if cls is ModelNotFoundError:
        return cls("acme/xary", ["acme/xray", "acme/other"])
    return cls(f"a {cls.__name__} happened: naïve message")


@pytest.mark.parametrize("cls", [ZooError, *all_subclasses(ZooError)], ids=lambda c: c.__name__)
def test_each_error_comes_back_from_the_wire_as_its_class(cls):
    error = example(cls)
    status, headers, body = error.wire()
    assert status == error.status and body["type"] == cls.__name__ and body["error"] == str(error)
    assert headers["X-Error-Message"].isascii() and headers["X-Error-Code"] == body["code"] == (cls.code or
                                                                                                cls.__name__)
    back = error_from_response(status, headers, json.dumps(body).encode())
    assert type(back) is cls and str(back) == str(error) and back.status == status
    assert getattr(back, "suggestions", None) == getattr(error, "suggestions", None)


def test_without_a_type_the_hub_code_then_the_status_decide():
    by_code = error_from_response(404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "no file"}, b"")
    assert type(by_code) is EntryNotFoundError and str(by_code) == "no file"
    assert type(error_from_response(403, {}, b'{"error": "not yours"}')) is errors.ForbiddenError
    assert type(error_from_response(409, {"X-Error-Code": "ConflictError"}, b"")) is errors.ConflictError
    plain = error_from_response(502, {}, b"<html>bad gateway</html>")
    assert type(plain) is ZooError and "bad gateway" in str(plain)
    assert type(error_from_response(404, {}, b'{"error": "x", "type": "NotAnErrorClass"}')) is errors.NotFoundError


def test_unknown_names_suggest_close_ones_and_not_found_models_answer_anonymous_callers_401():
    alias = UnknownAliasError("alias of acme/x", "productoin", ["production", "staging"])
    assert alias.suggestions == ["production"] and alias.code == "RevisionNotFound" and alias.status == 404
    model = ModelNotFoundError("acme/xary", ["acme/xray", "acme/secret"], anonymous=True)
    assert str(model) == "model 'acme/xary' not found; did you mean acme/xray?" and model.status == 401
    assert ModelNotFoundError("acme/nothing", ["acme/xray", "acme/secret"]).suggestions == []
    assert EntryNotFoundError("gone", commit="a" * 40).wire()[1]["X-Repo-Commit"] == "a" * 40
