"""One settings object for every ZOO_* variable: defaults, the environment, `zoo info --settings`; and the registry
transport chosen by the URI's scheme."""

from __future__ import annotations

import json

import pytest

from zoo_core.client import open_registry
from zoo_core.embedded import EmbeddedRegistry
from zoo_core.errors import ZooError
from zoo_core.remote import HttpRegistry
from zoo_core.settings import describe_settings, get_settings

VARIABLES = ["ZOO_REGISTRY", "ZOO_TOKEN", "ZOO_DATABASE_URL", "ZOO_BLOB_URL", "ZOO_S3_ENDPOINT_URL", "ZOO_CACHE",
             "ZOO_MAX_UPLOAD", "ZOO_LFS_THRESHOLD", "ZOO_MAX_BODY", "ZOO_HEADER_TIMEOUT", "ZOO_BODY_TIMEOUT",
             "ZOO_LFS_SECRET",
             "ZOO_LOAD_PLUGINS", "ZOO_CARD_POLICY",
             "ZOO_TRACE_PLUGINS"]


@pytest.fixture
def clean_env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_and_every_variable_declared_once(clean_env):
    settings = get_settings()
    assert (settings.registry, settings.cache, settings.max_upload) == ("~/.zoo", "~/.cache/zoo", 20 * 1024**3)
    assert settings.token is None and settings.load_plugins is None and settings.trace_plugins is False
    rows = describe_settings(settings)
    assert [r["variable"] for r in rows] == VARIABLES
    assert all(r["source"] == "default" and r["description"] for r in rows)


def test_the_environment_is_read_on_each_call(clean_env):
    clean_env.setenv("ZOO_MAX_UPLOAD", "1000")
    clean_env.setenv("ZOO_LOAD_PLUGINS", "")
    clean_env.setenv("ZOO_TRACE_PLUGINS", "1")
    settings = get_settings()
    assert (settings.max_upload, settings.load_plugins, settings.trace_plugins) == (1000, "", True)
    clean_env.setenv("ZOO_MAX_UPLOAD", "2000")
    assert get_settings().max_upload == 2000
    sources = {r["variable"]: r["source"] for r in describe_settings()}
    assert sources["ZOO_MAX_UPLOAD"] == "environment" and sources["ZOO_CACHE"] == "default"


def test_a_malformed_value_names_the_variable(clean_env):
    clean_env.setenv("ZOO_MAX_UPLOAD", "lots")
    with pytest.raises(ZooError, match="ZOO_MAX_UPLOAD"):
        get_settings()


def test_info_settings_masks_secrets_and_says_where_each_came_from(zoo, tmp_path):
    env = {"ZOO_TOKEN": "zoo_secret_token_1234", "ZOO_REGISTRY": str(tmp_path),
           "ZOO_DATABASE_URL": "postgresql+psycopg://zoo:hunter2@db:5432/zoo"}
    rows = {r["variable"]: r for r in json.loads(zoo("info", "--settings", "--json", env=env, check=True).stdout)}
    assert rows["ZOO_TOKEN"]["value"] == "****1234" and rows["ZOO_TOKEN"]["source"] == "environment"
    assert rows["ZOO_DATABASE_URL"]["value"] == "postgresql+psycopg://zoo:****@db:5432/zoo"
    assert rows["ZOO_REGISTRY"]["value"] == str(tmp_path)
    table = zoo("info", "--settings", env=env, check=True).stdout
    assert "ZOO_MAX_UPLOAD" in table and "hunter2" not in table and "secret_token" not in table


def test_the_scheme_chooses_the_transport(clean_env, tmp_path):
    embedded = open_registry(tmp_path / "a")
    assert isinstance(embedded, EmbeddedRegistry) and embedded.root == (tmp_path / "a").resolve()
    assert isinstance(open_registry(f"file://{tmp_path / 'b'}"), EmbeddedRegistry)
    assert (tmp_path / "b" / "registry.db").is_file()
    remote = open_registry("https://zoo.example:8443/", token="zoo_t")
    assert isinstance(remote, HttpRegistry) and remote.url == "https://zoo.example:8443" and remote.token == "zoo_t"
    clean_env.setenv("ZOO_REGISTRY", "http://127.0.0.1:9")
    clean_env.setenv("ZOO_TOKEN", "zoo_from_env")
    assert open_registry().token == "zoo_from_env"
    with pytest.raises(ZooError, match=r"unknown registry scheme 's3' .*a folder, file://, http://, https://"):
        open_registry("s3://bucket/zoo")
    with pytest.raises(ZooError, match="embedded registry"):
        open_registry("http://127.0.0.1:9", database_url="sqlite://")
    for registry in (embedded, open_registry(f"file://{tmp_path / 'b'}")):
        registry.service.engine.dispose()
