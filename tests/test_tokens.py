"""Tokens: list, revoke, expire, read-only, last use recorded; a revocation holds from the next request (issue 12,
item 10)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

import zoo_core
from zoo_core.errors import AuthError, ForbiddenError, ZooError


def card() -> str:
    return "---\nlicense: mit\n---\n# m\n"


@pytest.fixture
def served(tmp_path, serve):
    root = tmp_path / "registry"
    admin = zoo_core.open_registry(root)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "README.md").write_text(card())
    admin.push(folder, "acme/secret", visibility="private")
    return admin, serve(root), folder


def test_a_read_only_token_reads_private_models_and_writes_nothing(served):
    admin, url, folder = served
    token = admin.create_token("acme", "ci", read_only=True)
    reader = zoo_core.open_registry(url, token=token)
    assert reader.resolve("acme/secret").number == 1  # private, and its namespace's
    with pytest.raises(ForbiddenError):
        reader.push(folder, "acme/secret")
    answer = httpx.post(f"{url}/api/models/acme/secret/aliases", json={"alias": "production", "version": 1},
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 403
    assert [t["read_only"] for t in admin.list_tokens("acme")] == [True]
    whoami = httpx.get(f"{url}/api/whoami-v2", headers={"Authorization": f"Bearer {token}"})
    assert whoami.status_code == 200


def test_revoking_a_token_takes_effect_on_the_next_request_and_use_is_recorded(served):
    admin, url, folder = served
    token = admin.create_token("acme", "laptop")
    writer = zoo_core.open_registry(url, token=token)
    assert writer.push(folder, "acme/secret").number == 2
    listed = admin.list_tokens()
    assert len(listed) == 1 and listed[0]["state"] == "active" and listed[0]["last_used_at"] is not None
    assert "zoo_" not in json.dumps(listed) and token not in json.dumps(listed)  # the secret is never stored
    admin.revoke_token(listed[0]["id"])
    answer = httpx.get(f"{url}/api/models/acme/secret", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401 and "was revoked" in answer.headers["X-Error-Message"]
    assert admin.list_tokens("acme")[0]["state"] == "revoked"
    with pytest.raises(ZooError, match="no token with id 999"):
        admin.revoke_token(999)


def test_an_expired_token_is_refused_with_when(tmp_path):
    admin = zoo_core.open_registry(tmp_path / "registry")
    token = admin.create_token("acme", "short", expires_in=1)
    assert admin.service.viewer_for(token).can_write("acme")
    time.sleep(1.2)
    with pytest.raises(AuthError, match="'short' of acme\\) expired on"):
        admin.service.viewer_for(token)
    assert admin.list_tokens()[0]["state"] == "expired"
    with pytest.raises(ZooError, match="lifetime must be positive"):
        admin.create_token("acme", expires_in=0)


def test_token_commands(tmp_path, zoo):
    registry = str(tmp_path / "registry")
    token = zoo("token", "create", "acme", "--name", "ci", "--read-only", "--expires-days", "30", "-r", registry,
                check=True).stdout.strip()
    assert token.startswith("zoo_")
    listed = json.loads(zoo("token", "list", "acme", "--json", "-r", registry, check=True).stdout)
    assert listed[0]["name"] == "ci" and listed[0]["read_only"] and listed[0]["expires_at"]
    assert "read" in zoo("token", "list", "-r", registry, check=True).stdout
    revoked = zoo("token", "revoke", str(listed[0]["id"]), "-r", registry, check=True).stdout
    assert "revoked token" in revoked
    missing = zoo("token", "revoke", "42", "-r", registry)
    assert missing.returncode == 2 and "no token with id 42" in missing.stderr
