"""Large files through the Hub client: `HfApi.upload_file` of one large file into `zoo serve` (Git LFS: batch, then
a streamed PUT, then the commit), downloaded back with `hf_hub_download`, against the same file pushed with
`zoo push` (the streamed upload the zoo's own client uses) into the same server in the same run.

Server RSS is sampled every 50 ms: before each transfer, its peak during it, and after. Flat memory means the growth
stays far below the file size for both, and the LFS path costs about what `zoo push` costs. A 60 MiB upload_file
(under the LFS threshold, so base64 inside the commit) shows what the commit endpoint holds.

Default 2 GiB (--quick: 256 MiB). Prints a table; --json adds one JSON object on the last line.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

os.environ["HF_HUB_DISABLE_XET"] = "1"  # huggingface_hub >= 1.0 would use Xet, which the zoo does not speak
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
# the server this bench starts takes files from 64 MiB up through Git LFS (the default, 1 GiB, would send --quick's
# 256 MiB file inside the commit and the "Git LFS" row would measure the inline path)
os.environ["ZOO_LFS_THRESHOLD"] = str(64 * 1024 * 1024)

from _common import Sampler, emit, options, zoo_serve  # noqa: E402
from stream import CARD  # noqa: E402

import zoo_core  # noqa: E402
from zoo_core.registry.files import file_sha256  # noqa: E402

INLINE_MIB = 60  # below this bench's LFS threshold (64 MiB): carried base64 inside the commit


def main() -> None:
    size_mib = 256 if options(__doc__, "a 256 MiB file, not 2 GiB").parse_args().quick else 2048
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "big"
        folder.mkdir()
        big = folder / "model.safetensors"
        digest = hashlib.sha256()
        with big.open("wb") as handle:
            for _ in range(size_mib):
                chunk = os.urandom(1024 * 1024)
                digest.update(chunk)
                handle.write(chunk)
        (folder / "README.md").write_text(CARD)
        registry = tmp / "registry"
        with zoo_serve(registry) as (server, url):
            admin = zoo_core.open_registry(str(registry))
            pusher, token = admin.create_token("bench"), admin.create_token("hub")
            os.environ["HF_HUB_CACHE"] = str(tmp / "hf-cache")
            from huggingface_hub import HfApi, hf_hub_download

            with Sampler(server.pid) as push:
                zoo_core.open_registry(url, token=pusher).push(folder, "bench/pushed", visibility="private")
            # another namespace, which cannot read bench's private model: the batch asks it for every byte, streamed
            # and verified, then stored once (the blob is there already)
            api = HfApi(endpoint=url, token=token)
            api.create_repo("hub/lfs")
            api.upload_file(path_or_fileobj=str(folder / "README.md"), path_in_repo="README.md", repo_id="hub/lfs")
            with Sampler(server.pid) as lfs:
                api.upload_file(path_or_fileobj=str(big), path_in_repo="model.safetensors", repo_id="hub/lfs")
            small = folder / "inline.bin"  # just under the LFS threshold: base64 inside the commit
            small.write_bytes(os.urandom(INLINE_MIB * 1024 * 1024))
            with Sampler(server.pid) as inline:
                api.upload_file(path_or_fileobj=str(small), path_in_repo="inline.bin", repo_id="hub/lfs")
            with Sampler(server.pid) as download:
                pulled = Path(hf_hub_download("hub/lfs", "model.safetensors", endpoint=url, token=token))
            same = file_sha256(pulled) == digest.hexdigest()
    result = {"file_mib": size_mib, "zoo_push": push.row(size_mib), "lfs_upload_file": lfs.row(size_mib),
              "inline_upload_file": {**inline.row(INLINE_MIB), "file_mib": INLINE_MIB},
              "hf_hub_download": download.row(size_mib), "identical": same}
    print(f"file {size_mib} MiB into zoo serve; server RSS sampled every 50 ms (MiB)")
    print(f"{'transfer':34} {'before':>8} {'peak':>8} {'after':>8} {'growth':>8} {'MiB/s':>8}")
    for name, key in (("zoo push (baseline, streamed)", "zoo_push"), ("HfApi.upload_file (Git LFS)", "lfs_upload_file"),
                      ("hf_hub_download (back)", "hf_hub_download")):
        r = result[key]
        print(f"{name:34} {r['before_mib']:8.1f} {r['peak_mib']:8.1f} {r['after_mib']:8.1f} {r['growth_mib']:8.1f} "
              f"{r['mib_s']:8.1f}")
    r = result["inline_upload_file"]
    print(f"{f'upload_file {INLINE_MIB} MiB (inline)':34} {r['before_mib']:8.1f} {r['peak_mib']:8.1f} "
          f"{r['after_mib']:8.1f} {r['growth_mib']:8.1f} {r['mib_s']:8.1f}")
    print(f"downloaded bytes identical: {same}")
    emit(result)


if __name__ == "__main__":
    main()
