"""Two independent `zoo serve` processes (as on two hosts: each its own local folder) over one PostgreSQL database
and one S3-compatible store (moto's server) serve one registry: concurrent pushes through both lose and duplicate
no version, and what one server published the other serves byte for byte."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.cards import complete_card

pytest.importorskip("boto3")
MOTO = Path(sys.executable).parent / "moto_server"
PUSHES = 12  # per model, half through each server



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_bucket(tmp_path):
    if not MOTO.exists():
        pytest.skip("moto[server] is not installed")
    import boto3
    import httpx

    port = free_port()
    process = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(endpoint, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "ZOO_S3_ENDPOINT_URL": endpoint}
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket="zoo-shared")
    yield env, "s3://zoo-shared/registry"
    process.terminate()
    process.wait(timeout=10)


def test_two_servers_over_one_database_and_bucket_lose_no_version(postgres_url, s3_bucket, serve, tmp_path,
                                                                 monkeypatch):
    import zoo_core
    from zoo_core.registry.service import RegistryService

    env, blob_url = s3_bucket
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    shared = {**env, "ZOO_DATABASE_URL": postgres_url, "ZOO_BLOB_URL": blob_url}
    hosts = [serve(tmp_path / f"host-{i}", env=shared) for i in range(2)]  # each host its own local folder
    admin = RegistryService(postgres_url, tmp_path / "admin", blob_url=blob_url)
    token = admin.create_token("team")

    def push(job: tuple[str, int]) -> tuple[str, int, str, int]:
        model, i = job
        folder = tmp_path / "pushes" / f"{model}-{i}"
        folder.mkdir(parents=True)
        weights = f"{model} push {i} ".encode() * 5000  # distinct bytes per push
        (folder / "model.safetensors").write_bytes(weights)
        (folder / "README.md").write_text(complete_card("shared", license="mit"))
        url = hosts[i % 2]
        info = zoo_core.open_registry(url, token=token).push(folder, f"team/{model}")
        return model, i, hashlib.sha256(weights).hexdigest(), info.number

    jobs = [(model, i) for i in range(PUSHES) for model in ("shared", "other")]
    with ThreadPoolExecutor(max_workers=8) as pool:
        pushed = list(pool.map(push, jobs))

    for model in ("shared", "other"):
        mine = [p for p in pushed if p[0] == model]
        numbers = sorted(p[3] for p in mine)
        assert numbers == list(range(1, PUSHES + 1)), f"{model}: numbers handed out {numbers}"
        # what each server lists is what was pushed: every push one version, its own weights, none twice
        for url in hosts:
            listed = zoo_core.open_registry(url, token=token).versions(f"team/{model}")
            assert sorted(v.number for v in listed) == list(range(1, PUSHES + 1))
        weights_of = {p[3]: p[2] for p in mine}
        for number, sha in weights_of.items():
            info = admin.resolve(f"team/{model}@{number}")
            assert {f["path"]: f["sha256"] for f in info.files}["model.safetensors"] == sha
    # a version pushed through one host comes back byte for byte through the other
    model, i, sha, number = pushed[0]
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    pulled = zoo_core.open_registry(hosts[(i + 1) % 2], token=token).pull(f"team/{model}@{number}")
    assert hashlib.sha256((pulled / "model.safetensors").read_bytes()).hexdigest() == sha
    admin.engine.dispose()
