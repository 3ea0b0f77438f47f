"""zoo-timm over every architecture timm lists: each built on the meta device (shapes only, no memory, no weights),
its layer groups checked to hold every parameter exactly once, and its feature width checked against a forward
pass on the meta device where torch can run one there.

Counts: ok (groups and feature width checked), ok-groups (groups checked; the meta forward is not possible for
this model, reason stated), failed (with the reason), skipped (above the parameter budget, `--max-params`,
default 1e9; the count comes from the meta build itself). Long: run it in the background (about a second per
architecture on one core). Options: --only PATTERN (timm's wildcards), --limit N, --json (one JSON object last),
--timeout S per architecture (default 120).
"""

from __future__ import annotations

import collections
import signal
import time

import timm
from _common import emit, options, set_threads
from zoo_timm.coverage import check_architecture


class Timeout(BaseException):  # not an Exception: the check's own handlers must not catch it
    pass


def _alarm(signum, frame):
    raise Timeout


def main() -> None:
    set_threads()
    parser = options(__doc__)
    parser.add_argument("--only", default="*", help="architectures matching this timm pattern (default all)")
    parser.add_argument("--limit", type=int, help="the first N of them")
    parser.add_argument("--max-params", type=float, default=1e9, help="skip larger models (default 1e9)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds an architecture may take (default 120)")
    parser.add_argument("--verbose", action="store_true", help="print every architecture, not only failures")
    args = parser.parse_args()
    archs = timm.list_models(args.only)[: args.limit]
    max_params, timeout = args.max_params, args.timeout
    signal.signal(signal.SIGALRM, _alarm)
    results, start = {}, time.perf_counter()
    for i, arch in enumerate(archs, 1):
        signal.alarm(timeout)
        try:
            status, reason = check_architecture(arch, max_params)
        except Timeout:
            status, reason = "failed", f"no answer within {timeout} s"
        except Exception as exc:
            status, reason = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        finally:
            signal.alarm(0)
        results[arch] = (status, reason)
        if status != "ok" or args.verbose:
            print(f"[{i}/{len(archs)}] {arch}: {status}: {reason}", flush=True)
    counts = collections.Counter(status for status, _ in results.values())
    print(f"\n{len(archs)} timm {timm.__version__} architectures in {time.perf_counter() - start:.0f} s: "
          + ", ".join(f"{counts[s]} {s}" for s in ("ok", "ok-groups", "failed", "skipped")))
    for status in ("ok-groups", "failed", "skipped"):
        reasons = collections.Counter(":".join(r.split(":")[:2]) if status != "skipped" else "above the budget"
                                      for s, r in results.values() if s == status)
        for reason, n in reasons.most_common():
            print(f"  {status}: {n} x {reason}")
    emit({"counts": dict(counts), "results": {a: list(r) for a, r in results.items()}})


if __name__ == "__main__":
    main()
