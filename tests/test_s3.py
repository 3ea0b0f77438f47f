"""The registry with its blobs in an S3-compatible bucket: moto's standalone server on loopback, started here."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cards import complete_card
from zoo_core.registry.blobs import IntegrityError
from zoo_core.registry.service import CardError, RegistryService

pytest.importorskip("boto3")
MOTO = Path(sys.executable).parent / "moto_server"


@pytest.fixture(scope="module")
def s3_endpoint():
    if not MOTO.exists():
        pytest.skip("moto[server] is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(100):
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def service(s3_endpoint, tmp_path, monkeypatch):
    import boto3

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "ZOO_S3_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    bucket = f"zoo-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    svc = RegistryService(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "blobs", blob_url=f"s3://{bucket}/zoo")
    yield svc
    svc.engine.dispose()


def checkpoint(folder: Path, card: str) -> Path:
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"w" * 3_000_000)  # big enough for a multipart upload
    (folder / "README.md").write_text(card)
    return folder




def test_push_pull_dedupe_and_gc_on_s3(service, tmp_path):
    info = service.push_folder(checkpoint(tmp_path / "a", complete_card(license="mit")), "acme/s3")
    keys = sorted(service.blobs.all())
    assert len(keys) == 2 and {f["sha256"] for f in info.files} == set(keys)
    assert not (tmp_path / "blobs" / "sha256").exists()  # nothing stored locally
    pulled = service.pull("acme/s3@1", tmp_path / "out")
    assert (pulled / "model.safetensors").read_bytes() == b"w" * 3_000_000
    service.push_folder(tmp_path / "a", "acme/s3-copy")
    assert len(list(service.blobs.all())) == 2  # equal files stored once
    weights = next(f for f in info.files if f["path"] == "model.safetensors")
    assert b"".join(service.blobs.read_range(weights["sha256"], 10, 14)) == b"wwwww"  # ranged GET
    service.card_policy = "required"  # a push refused for its card leaves its blobs behind, for gc
    with pytest.raises(CardError):
        service.push_folder(checkpoint(tmp_path / "b", "# nothing"), "acme/bad")
    assert service.gc(grace=0)["removed"] == 1  # the refused push's README; its weights are shared and kept
    assert len(list(service.blobs.all())) == 2


def test_corrupt_upload_never_reaches_the_bucket(service):
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        service.store_file(io.BytesIO(b"abc"), "x.bin", size=3, sha256="0" * 64)
    assert list(service.blobs.all()) == []
