"""Every benchmark's command line: `--help` prints its options and exits without running anything (fewshot.py once
started its hour-long run on `--help`), and a mistyped option is refused (`--seed 2` for `--seeds 2` was ignored)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_exits_at_once_and_a_mistyped_option_is_refused(script):
    helped = subprocess.run([sys.executable, script, "--help"], cwd=BENCH, capture_output=True, text=True,
                            timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith(f"usage: {script} [-h]")
    wrong = subprocess.run([sys.executable, script, "--no-such-option"], cwd=BENCH, capture_output=True, text=True,
                           timeout=120)
    assert wrong.returncode == 2 and "unrecognized arguments: --no-such-option" in wrong.stderr
