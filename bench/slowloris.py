"""Slow headers ("slowloris") against one `zoo serve`: N connections send a request's headers one byte a second and
never finish them, while a well-behaved client sends a GET every half second. Prints how many slow connections the
server still holds as time goes by, and the well-behaved client's answers and latency.

Before: uvicorn has no timeout on reading a request's headers (its keep-alive timeout stops at a request's first
byte), so every slow connection is held for as long as its client likes. After: `zoo serve` closes a connection
whose headers are not complete `ZOO_HEADER_TIMEOUT` seconds (default 10) after it opened or after its previous
response (registry_server/slowheaders.py). Run both with `--timeout 0` (off, as before) and the default.

Options: --connections N (default 500), --duration S (default 30; --quick 15), --timeout S (ZOO_HEADER_TIMEOUT for
the server; 0: off), --json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from _common import emit, rss_mib, zoo_serve

HEADERS = b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\nX-Padding: " + b"a" * 10_000


async def slow_client(host: str, port: int, stop: float, open_until: list[float], k: int) -> None:
    """Headers one byte a second; records when the server closed the connection (or the end of the run)."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        open_until[k] = 0.0
        return
    begin = time.perf_counter()
    try:
        for byte in HEADERS:
            if time.perf_counter() >= stop:
                break
            writer.write(bytes([byte]))
            await writer.drain()
            try:  # a second's pause; anything read back (a 408) or EOF means the server gave up on us
                await asyncio.wait_for(reader.read(1024), 1.0)
                break
            except TimeoutError:
                continue
    except (ConnectionError, OSError):
        pass
    open_until[k] = time.perf_counter() - begin
    writer.close()


async def polite_client(url: str, stop: float, latencies: list[float], failures: list[str]) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while time.perf_counter() < stop:
            begin = time.perf_counter()
            try:
                answer = await client.get("/api/models", params={"limit": 1})
                if answer.status_code != 200:
                    failures.append(str(answer.status_code))
                else:
                    latencies.append(time.perf_counter() - begin)
            except Exception as exc:  # noqa: BLE001 (counted)
                failures.append(type(exc).__name__)
            await asyncio.sleep(0.5)


async def attack(url: str, connections: int, duration: float) -> dict:
    host, port = url.removeprefix("http://").split(":")
    stop = time.perf_counter() + duration
    open_until = [duration] * connections
    latencies: list[float] = []
    failures: list[str] = []
    slow = [asyncio.create_task(slow_client(host, int(port), stop, open_until, k)) for k in range(connections)]
    await polite_client(url, stop, latencies, failures)
    await asyncio.gather(*slow)
    held = sorted(open_until)
    return {"connections": connections, "held_s_median": round(held[len(held) // 2], 1),
            "held_s_max": round(held[-1], 1), "held_to_end": sum(t >= duration - 1.5 for t in held),
            "polite_ok": len(latencies), "polite_failed": len(failures),
            "polite_p50_ms": round(sorted(latencies)[len(latencies) // 2] * 1000, 1) if latencies else None,
            "polite_max_ms": round(max(latencies) * 1000, 1) if latencies else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--timeout", type=float, default=None, help="ZOO_HEADER_TIMEOUT for the server (0: off)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    duration = 15.0 if args.quick else args.duration
    if args.timeout is not None:
        os.environ["ZOO_HEADER_TIMEOUT"] = str(args.timeout)
    with tempfile.TemporaryDirectory(prefix="zoo-slowloris-") as tmp, zoo_serve(Path(tmp) / "registry") as (server,
                                                                                                              url):
        before = rss_mib(server.pid)
        result = asyncio.run(attack(url, args.connections, duration))
        result.update(rss_before_mib=round(before, 1), rss_after_mib=round(rss_mib(server.pid), 1))
    timeout = os.environ.get("ZOO_HEADER_TIMEOUT", "default")
    print(f"{args.connections} connections sending headers a byte a second for {duration:.0f} s "
          f"(ZOO_HEADER_TIMEOUT={timeout}):")
    print(f"  slow connections held: median {result['held_s_median']} s, longest {result['held_s_max']} s, "
          f"{result['held_to_end']} still open at the end")
    print(f"  well-behaved client: {result['polite_ok']} answered, {result['polite_failed']} failed, p50 "
          f"{result['polite_p50_ms']} ms, slowest {result['polite_max_ms']} ms")
    print(f"  server RSS {result['rss_before_mib']} -> {result['rss_after_mib']} MiB")
    emit(result)


if __name__ == "__main__":
    main()
