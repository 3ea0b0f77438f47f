"""Uploads and downloads stream: push and pull a large file through `zoo serve` and measure the server's peak
memory against its resident memory before the transfer, in the same run.

Default 2 GiB (--quick: 256 MiB). Prints a table; --json adds {"file_mib", "server_rss_before_mib",
"server_peak_mib", "growth_mib", "upload_mib_s", "download_mib_s", "nginx"} on the last line. Bounded memory means
the growth stays far below the file size.

Then the same stored file from nginx (Debian's package, installed with apt-get when missing; one worker, sendfile)
against the zoo's Hub URL `/{ns}/{name}/resolve/main/{path}`, both fetched by curl on loopback: the whole file
and 32 Range requests of 8 MiB at random offsets over one connection, each in ROUNDS rounds that alternate which
server goes first; the medians' ratio, each round's ratio, and each server's CPU seconds a GiB served (what load
inflates least). Target: the zoo >= 0.8x nginx.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import Sampler, emit, options, tree_cpu, zoo_serve

import zoo_core
from zoo_core.registry.files import file_sha256

ROUNDS = 5  # fetches of each kind from each server, interleaved; medians reported

CARD = """---
license: mit
---
# big

## Intended use

Benchmarks.

## Training data

None.

## Evaluation

| accuracy | 0.0 |

## Limitations

Not a model.
"""


def main() -> None:
    size_mib = 256 if options(__doc__, "a 256 MiB file, not 2 GiB").parse_args().quick else 2048
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "big"
        folder.mkdir()
        chunk = os.urandom(1024 * 1024)
        with (folder / "model.safetensors").open("wb") as handle:
            for _ in range(size_mib):
                handle.write(chunk)
        (folder / "README.md").write_text(CARD)
        registry = tmp / "registry"
        with zoo_serve(registry) as (server, url):
            token = zoo_core.open_registry(str(registry)).create_token("bench")
            with Sampler(server.pid) as memory:
                start = time.perf_counter()
                zoo_core.open_registry(url, token=token).push(folder, "bench/big")
                upload_s = time.perf_counter() - start
                start = time.perf_counter()
                os.environ["ZOO_CACHE"] = str(tmp / "cache")
                pulled = zoo_core.open_registry(url).pull("bench/big@1")
                download_s = time.perf_counter() - start
            blob = registry / "blobs" / "sha256"
            sha = file_sha256(folder / "model.safetensors")
            against_nginx = compare_nginx(f"{url}/bench/big/resolve/main/model.safetensors",
                                          blob / sha[:2] / sha[2:], size_mib, tmp, server.pid)
        same = file_sha256(pulled / "model.safetensors") == file_sha256(folder / "model.safetensors")
    before, peak = memory.before, memory.peak
    result = {"file_mib": size_mib, "server_rss_before_mib": round(before, 1), "server_peak_mib": round(peak, 1),
              "growth_mib": round(peak - before, 1), "upload_mib_s": round(size_mib / upload_s, 1),
              "download_mib_s": round(size_mib / download_s, 1), "identical": same, "nginx": against_nginx}
    print(f"file {size_mib} MiB through zoo serve (push, then pull), server memory sampled every 50 ms")
    print(f"server RSS before {before:8.1f} MiB   peak {peak:8.1f} MiB   growth {result['growth_mib']:.1f} MiB "
          f"({100 * result['growth_mib'] / size_mib:.1f}% of the file)")
    print(f"upload {result['upload_mib_s']} MiB/s, download {result['download_mib_s']} MiB/s, bytes identical: {same}")
    print(f"\nthe same file from disk, fetched by curl on loopback (load average {os.getloadavg()[0]:.2f}):")
    print(f"{'':<34}{'nginx':>12}{'zoo /resolve/':>16}{'zoo/nginx':>11}   server CPU s a GiB: nginx / zoo;"
          " zoo/nginx each round")
    for key, label in (("full", f"whole file ({size_mib} MiB)"), ("range", "32 Range requests of 8 MiB")):
        row = against_nginx[key]
        print(f"{label:<34}{row['nginx_mib_s']:>8} MiB/s{row['zoo_mib_s']:>10} MiB/s{row['ratio']:>10}x"
              f"   {row['nginx_cpu_s_gib']} / {row['zoo_cpu_s_gib']}; {row['ratios']}")
    print(f"(median of {ROUNDS} interleaved rounds each)")
    emit(result)


def ensure_nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found:
        return found
    print("installing nginx (Debian package) ...", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    if subprocess.run([*sudo, "apt-get", "install", "-y", "nginx-light"], stdout=subprocess.DEVNULL).returncode:
        subprocess.run([*sudo, "apt-get", "update"], stdout=subprocess.DEVNULL, check=True)
        subprocess.run([*sudo, "apt-get", "install", "-y", "nginx-light"], stdout=subprocess.DEVNULL, check=True)
    return shutil.which("nginx") or "/usr/sbin/nginx"


NGINX_CONF = """daemon off;
worker_processes 1;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  server {{ listen 127.0.0.1:{port}; location / {{ root {root}; }} }}
}}
"""


def compare_nginx(zoo_url: str, blob: Path, size_mib: int, tmp: Path, zoo_pid: int) -> dict:
    """The stored `blob` served by nginx and by the zoo at `zoo_url`: MiB/s of each, whole and ranged, and each
    server's CPU time a fetch (ms; what the machine's load does not inflate, unlike MiB/s)."""
    nginx = ensure_nginx()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user="user root;" if os.geteuid() == 0 else "", tmp=tmp, port=port,
                                      root=blob.parent))
    server = subprocess.Popen([nginx, "-c", str(conf), "-e", str(tmp / "nginx-error.log")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nginx_url = f"http://127.0.0.1:{port}/{blob.name}"
    try:
        for _ in range(100):
            if subprocess.run(["curl", "-sf", "-r", "0-0", "-o", "/dev/null", nginx_url]).returncode == 0:
                break
            time.sleep(0.1)
        size = size_mib * 1024 * 1024
        rng = random.Random(0)
        ranges = [(start, start + 8 * 1024 * 1024 - 1) for start in
                  (rng.randrange(0, size - 8 * 1024 * 1024) for _ in range(32))]
        pids = {"nginx": server.pid, "zoo": zoo_pid}
        urls = {"nginx": nginx_url, "zoo": zoo_url}
        out = {}
        for key, args, mib in (("full", [], size_mib), ("range", ranges, 32 * 8)):
            seconds: dict[str, list[float]] = {"nginx": [], "zoo": []}
            cpu: dict[str, list[float]] = {"nginx": [], "zoo": []}
            # rounds alternate which server goes first, so load that comes and goes falls on both alike
            for i in range(ROUNDS):
                for name in (("nginx", "zoo") if i % 2 == 0 else ("zoo", "nginx")):
                    before = tree_cpu(pids[name])
                    seconds[name].append(_curl(urls[name], args))
                    cpu[name].append(tree_cpu(pids[name]) - before)
            speed = {name: mib / statistics.median(times) for name, times in seconds.items()}
            # CPU seconds a GiB served: what the machine's load inflates least (clock ticks: 10 ms grains)
            per_gib = {name: round(sum(c) / (ROUNDS * mib / 1024), 3) for name, c in cpu.items()}
            out[key] = {"nginx_mib_s": round(speed["nginx"], 1), "zoo_mib_s": round(speed["zoo"], 1),
                        "ratio": round(speed["zoo"] / speed["nginx"], 2),
                        "ratios": [round(n / z, 2) for n, z in zip(seconds["nginx"], seconds["zoo"], strict=True)],
                        "nginx_cpu_s_gib": per_gib["nginx"], "zoo_cpu_s_gib": per_gib["zoo"], "rounds": ROUNDS}
        return out
    finally:
        server.terminate()
        server.wait(timeout=10)


def _curl(url: str, ranges: list[tuple[int, int]]) -> float:
    """Seconds curl takes to fetch `url` whole, or each of `ranges` over one connection (curl --next)."""
    command = ["curl", "-sf", "-o", "/dev/null", url]
    if ranges:
        command = ["curl", "-sf"]
        for i, (start, end) in enumerate(ranges):
            command += [*(["--next"] if i else []), "-r", f"{start}-{end}", "-o", "/dev/null", url]
    begin = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - begin


if __name__ == "__main__":
    main()
