"""The fault trials shared by tests/test_faults.py (one short trial each) and bench/faults.py (many): real processes
pushing concurrently into one registry (over HTTP to a `zoo serve`, or embedded into its folder) while the server or
a pusher is killed with SIGKILL, or while `zoo gc` runs in a loop; then an audit of what the registry holds.

Run as a script, this module is the pusher: `python _faults.py REGISTRY MODEL COUNT SIZE SEED` pushes COUNT
checkpoints of about SIZE bytes of random weights into REGISTRY (a folder, or a server URL with ZOO_TOKEN set) and
prints one JSON line per push that returned: `{"ack": ...}` (acknowledged) or `{"fail": ...}`. A push that fails
(the server is down) is retried as a new push after a pause, until COUNT pushes were acknowledged or the `--until`
deadline (epoch seconds) passes; with `--no-retry`, COUNT pushes are attempted once each.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve()
NAMESPACE = "faults"
CARD = """---
license: mit
pipeline_tag: image-classification
---
# {name}

Weights of a fault trial.
"""


# -- the pusher (runs in its own process) -----------------------------------------------------------------------------
def write_checkpoint(folder: Path, rng: random.Random, size: int, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(CARD.format(name=name))
    (folder / "config.json").write_text(json.dumps({"backbone": {"name": "tinynet", "family": "tiny"}}))
    (folder / "metrics.json").write_text(json.dumps({"accuracy": round(rng.random(), 4)}))
    (folder / "model.safetensors").write_bytes(rng.randbytes(rng.randint(size // 2, size)))


def push_loop(registry: str, model: str, count: int, size: int, seed: int, until: float, retry: bool = True) -> None:
    from zoo_core import open_registry
    from zoo_core.registry.files import file_sha256

    rng = random.Random(seed)
    acked = attempts = 0
    with tempfile.TemporaryDirectory(prefix="zoo-faults-") as tmp:
        while acked < count and time.time() < until and (retry or attempts < count):
            attempts += 1
            folder = Path(tmp) / f"c{attempts}"
            write_checkpoint(folder, rng, size, model)
            files = {p.name: file_sha256(p) for p in folder.iterdir()}
            try:
                info = open_registry(registry).push(folder, model)
            except Exception as exc:  # noqa: BLE001 (reported; the trial decides what a failure means)
                print(json.dumps({"fail": f"{type(exc).__name__}: {exc}"[:300]}), flush=True)
                time.sleep(0.3)
                continue
            print(json.dumps({"ack": {"model": info.model_id, "number": info.number, "files": files}}), flush=True)
            acked += 1


# -- driving processes ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(database_url: str | None, token: str | None = None) -> dict[str, str]:
    env = {**os.environ}
    env.pop("ZOO_DATABASE_URL", None)
    if database_url:
        env["ZOO_DATABASE_URL"] = database_url
    if token:
        env["ZOO_TOKEN"] = token
    return env


def start_server(root: Path, port: int, database_url: str | None) -> subprocess.Popen:
    """`zoo serve` on `port`, answering (or an AssertionError with its output)."""
    import httpx

    server = subprocess.Popen([str(VENV_BIN / "zoo"), "serve", "--registry", str(root), "--port", str(port)],
                              env=env_for(database_url), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/models", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
        if server.poll() is not None:
            break
    server.kill()
    raise AssertionError(f"zoo serve did not start: {server.stdout.read().decode(errors='replace')}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_pusher(registry: str, model: str, count: int, size: int, seed: int, until: float,
                 env: dict[str, str], retry: bool = True) -> subprocess.Popen:
    # its checkpoints beside the trial's registry: a pusher killed with SIGKILL cannot remove them itself
    env = {**env, "TMPDIR": str(Path(registry).parent)} if "://" not in registry else env
    return subprocess.Popen([sys.executable, str(HERE), registry, model, str(count), str(size), str(seed),
                             "--until", str(until), *([] if retry else ["--no-retry"])], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def outcomes(pusher: subprocess.Popen) -> tuple[list[dict], list[str]]:
    """Wait for a pusher (or read what a killed one printed): its acknowledged pushes and its failures."""
    out, _ = pusher.communicate(timeout=300)
    acks, fails = [], []
    for line in out.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut by SIGKILL: not acknowledged
            continue
        if "ack" in row:
            acks.append(row["ack"])
        elif "fail" in row:
            fails.append(row["fail"])
    return acks, fails


def wait_for_uploads(root: Path, blobs: int, timeout: float = 120) -> None:
    """Until `blobs` blobs are stored (pushes are under way): a kill before that would test nothing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        base = root / "blobs" / "sha256"
        if base.is_dir() and sum(len(list(d.iterdir())) for d in base.iterdir()) >= blobs:
            return
        time.sleep(0.05)


def kill9(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def make_token(root: Path, database_url: str | None) -> str:
    from zoo_core.embedded import EmbeddedRegistry

    registry = EmbeddedRegistry(root, database_url)
    token = registry.create_token(NAMESPACE)
    registry.service.engine.dispose()
    return token


# -- auditing ---------------------------------------------------------------------------------------------------------
def audit(root: Path, database_url: str | None, acks: list[dict], pull_to: Path) -> dict[str, int]:
    """What the registry holds after the trial: acknowledged pushes missing or changed (`lost`), listed versions
    with a file missing or not matching its sha256 when pulled (`partial`), and the bytes no version references
    (`orphan_bytes`; `leased_bytes` of them are uploads still within their lease, kept by gc on purpose)."""
    from sqlmodel import Session, select

    from zoo_core.embedded import EmbeddedRegistry
    from zoo_core.registry.files import file_sha256
    from zoo_core.registry.models import Model, Namespace, Version

    registry = EmbeddedRegistry(root, database_url)
    service = registry.service
    lost = partial = files_verified = 0
    for ack in acks:
        try:
            info = registry.resolve(f"{ack['model']}@{ack['number']}")
            if {f["path"]: f["sha256"] for f in info.files} != ack["files"]:
                lost += 1
        except Exception:  # noqa: BLE001 (a version that cannot be resolved is lost)
            lost += 1
    with Session(service.engine) as session:
        refs = session.exec(select(Namespace.name, Model.name, Version.number)
                            .join(Model, Version.model_id == Model.id)
                            .join(Namespace, Model.namespace_id == Namespace.id)).all()
    for namespace, name, number in refs:
        ref = f"{namespace}/{name}@{number}"
        try:
            info = registry.resolve(ref)
            folder = registry.service.pull(ref, pull_to / f"{name}-{number}")
            ok = bool(info.files) and all(file_sha256(folder / f["path"]) == f["sha256"] for f in info.files)
            files_verified += len(info.files)
        except Exception:  # noqa: BLE001 (a listed version that cannot be pulled whole is partial)
            ok = False
        partial += not ok
    result = {"acknowledged": len(acks), "lost": lost, "versions": len(refs), "partial": partial,
              "files_verified": files_verified, **orphans(service)}
    service.engine.dispose()
    return result


def orphans(service) -> dict[str, int]:
    """Bytes in the blob store that no version references, and in its temporary folder (uploads cut short)."""
    from sqlmodel import Session, select

    from zoo_core.registry.models import FileEntry

    with Session(service.engine) as session:
        referenced = set(session.exec(select(FileEntry.sha256).distinct()).all())
    leased = service.leased_blobs()
    orphan = leased_bytes = 0
    for digest in service.blobs.all():
        if digest not in referenced:
            size = service.blobs.size(digest)
            orphan += size
            leased_bytes += size if digest in leased else 0
    tmp = sum(p.stat().st_size for p in (service.blobs.root / "tmp").rglob("*") if p.is_file())
    return {"orphan_bytes": orphan + tmp, "leased_bytes": leased_bytes}


def gc(root: Path, database_url: str | None, *args: str) -> subprocess.CompletedProcess:
    """`zoo gc` as an operator runs it, in its own process."""
    return subprocess.run([str(VENV_BIN / "zoo"), "gc", "--registry", str(root), *args], env=env_for(database_url),
                          capture_output=True, text=True, timeout=120)


def expire_leases(root: Path, database_url: str | None) -> None:
    """Move every upload lease into the past: what the registry looks like once UPLOAD_LEASE has gone by."""
    from sqlmodel import Session, update

    from zoo_core.embedded import EmbeddedRegistry
    from zoo_core.registry.models import Upload, utcnow

    service = EmbeddedRegistry(root, database_url).service
    with Session(service.engine) as session:
        session.exec(update(Upload).values(expires_at=utcnow()))
        session.commit()
    service.engine.dispose()


# -- the trials -------------------------------------------------------------------------------------------------------
def after_kill(root: Path, database_url: str | None, acks: list[dict], work: Path, killed_at: float
               ) -> dict[str, int]:
    """Audit, then `zoo gc --grace 0` (nothing is in flight any more), then forget the upload leases (as a day
    later) and gc again: what each pass leaves unreferenced."""
    from zoo_core.registry.blobs import TMP_MIN_AGE

    row = audit(root, database_url, acks, work / "pulled")
    time.sleep(max(0.0, killed_at + TMP_MIN_AGE + 0.5 - time.time()))  # gc leaves younger temporary files alone
    gc(root, database_url, "--grace", "0")
    row["orphans_after_gc"] = audit_orphans(root, database_url)
    expire_leases(root, database_url)
    gc(root, database_url, "--grace", "0")
    row["orphans_after_lease"] = audit_orphans(root, database_url)
    return row


def audit_orphans(root: Path, database_url: str | None) -> int:
    from zoo_core.embedded import EmbeddedRegistry

    service = EmbeddedRegistry(root, database_url).service
    result = orphans(service)["orphan_bytes"]
    service.engine.dispose()
    return result


def kill_server_trial(work: Path, database_url: str | None, *, pushers: int = 3, count: int = 4,
                      size: int = 2 << 20, kill_after: float = 0.3, seed: int = 0) -> dict[str, int]:
    """HTTP pushes from `pushers` processes into one `zoo serve`, killed with SIGKILL `kill_after` seconds after the
    first eight blobs were stored, and
    restarted on the same port; the pushers retry through the outage until each has `count` acknowledged."""
    root = work / "registry"
    token = make_token(root, database_url)
    port = free_port()
    server = start_server(root, port, database_url)
    url, until = f"http://127.0.0.1:{port}", time.time() + 240
    procs = [start_pusher(url, f"{NAMESPACE}/m{i % 2}", count, size, seed * 100 + i, until,
                          env_for(None, token)) for i in range(pushers)]
    wait_for_uploads(root, 8)
    time.sleep(kill_after)
    kill9(server)
    killed_at = time.time()
    orphan_at_kill = audit_orphans(root, database_url)
    server = start_server(root, port, database_url)
    try:
        results = [outcomes(p) for p in procs]
    finally:
        stop(server)
    acks = [a for r in results for a in r[0]]
    row = after_kill(root, database_url, acks, work, killed_at)
    return {"failed_pushes": sum(len(r[1]) for r in results), "orphans_at_kill": orphan_at_kill, **row}


def kill_pusher_trial(work: Path, database_url: str | None, *, pushers: int = 3, count: int = 4,
                      size: int = 2 << 20, kill_after: float = 0.3, seed: int = 0) -> dict[str, int]:
    """Embedded pushes from `pushers` processes into one registry folder; the first is killed with SIGKILL
    `kill_after` seconds after the first eight blobs were stored (mid-push, most likely), the others go on to
    `count` acknowledged each."""
    root = work / "registry"
    make_token(root, database_url)  # creates the registry (and migrates it) before the pushers race to
    until = time.time() + 240
    procs = [start_pusher(str(root), f"{NAMESPACE}/m{i % 2}", count if i else 10_000, size, seed * 100 + i, until,
                          env_for(database_url)) for i in range(pushers)]
    wait_for_uploads(root, 8)
    time.sleep(kill_after)
    kill9(procs[0])
    killed_at = time.time()
    results = [outcomes(p) for p in procs]
    acks = [a for r in results for a in r[0]]
    row = after_kill(root, database_url, acks, work, killed_at)
    return {"failed_pushes": sum(len(r[1]) for r in results), "killed_acked": len(results[0][0]), **row}


def age_orphans(root: Path, database_url: str | None, seed: int, count: int = 4, size: int = 256 << 10
                ) -> list[bytes]:
    """Blobs of pushes that failed two hours ago (older than gc's grace period): the gc loop's work."""
    from zoo_core.embedded import EmbeddedRegistry

    service = EmbeddedRegistry(root, database_url).service
    rng = random.Random(seed)
    payloads = [rng.randbytes(size) for _ in range(count)]
    for data in payloads:
        spec = service.store_file([data], "model.safetensors", size=len(data))  # the administrator's: no lease
        os.utime(service.blobs.path(spec.sha256), (time.time() - 7200,) * 2)
    service.engine.dispose()
    return payloads


def collect(root: Path, database_url: str | None, grace: float | None, procs: list, counts: dict) -> None:
    """gc back to back in this process (a `zoo gc` process takes a second to start) until the pushers are done."""
    from zoo_core.embedded import EmbeddedRegistry
    from zoo_core.registry.types import GC_GRACE

    service = EmbeddedRegistry(root, database_url).service
    try:
        while any(p.poll() is None for p in procs):
            try:
                counts["gc_removed"] += service.gc(GC_GRACE if grace is None else grace)["removed"]
            except Exception:  # noqa: BLE001 (counted: a gc that fails is a finding too)
                counts["gc_failures"] += 1
            counts["gc_runs"] += 1
    finally:
        service.engine.dispose()


def gc_loop_trial(work: Path, database_url: str | None, *, http: bool, pushers: int = 3, count: int = 4,
                  size: int = 1 << 20, grace: float | None = None, seed: int = 0) -> dict[str, int]:
    """`zoo gc` in a loop (each run its own process, as cron would) while `pushers` processes push `count`
    versions each, over HTTP or embedded; aged orphans give gc something to delete. `grace`: gc's --grace
    (default: gc's own)."""
    root = work / "registry"
    token = make_token(root, database_url)
    age_orphans(root, database_url, seed)
    server = url = None
    if http:
        port = free_port()
        server = start_server(root, port, database_url)
        url = f"http://127.0.0.1:{port}"
    until = time.time() + 240
    procs = [start_pusher(url or str(root), f"{NAMESPACE}/m{i % 2}", count, size, seed * 100 + i, until,
                          env_for(database_url, token if http else None), retry=False) for i in range(pushers)]
    counts = {"gc_runs": 0, "gc_failures": 0, "gc_removed": 0}
    args = [] if grace is None else ["--grace", str(grace)]
    collector = threading.Thread(target=collect, args=(root, database_url, grace, procs, counts))
    collector.start()
    try:
        while any(p.poll() is None for p in procs):  # and `zoo gc` itself, as cron would run it
            done = gc(root, database_url, *args)
            counts["gc_runs"] += 1
            counts["gc_failures"] += done.returncode != 0
        results = [outcomes(p) for p in procs]
    finally:
        collector.join()
        if server is not None:
            stop(server)
    acks = [a for r in results for a in r[0]]
    row = audit(root, database_url, acks, work / "pulled")
    fails = [f for r in results for f in r[1]]
    return {**counts, "failed_pushes": len(fails), **row,
            **({"first_failure": fails[0]} if fails else {})}


if __name__ == "__main__":
    args = sys.argv[1:]
    deadline = float(args[args.index("--until") + 1]) if "--until" in args else time.time() + 600
    registry_arg, model_arg, count_arg, size_arg, seed_arg = args[:5]
    push_loop(registry_arg, model_arg, int(count_arg), int(size_arg), int(seed_arg), deadline, "--no-retry" not in args)
