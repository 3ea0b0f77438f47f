"""Each plugin is its own distribution: it builds as a wheel whose metadata carries its entry point."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())


def test_there_are_plugins():
    assert {p.name for p in PLUGINS} >= {"zoo-torchvision", "zoo-transformers"}


@pytest.mark.slow
@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_plugin_builds_a_wheel_with_entry_point_and_dependencies(plugin, tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(plugin)],
                   check=True, timeout=600)
    wheels = list(tmp_path.glob("*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
        entry_points = wheel.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "[zoo]" in entry_points
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert any("transfer-zoo" in line for line in requires)
    assert any(line.startswith("Requires-Dist: torch") for line in requires)
    assert any(n.endswith("/__init__.py") for n in names)


@pytest.mark.slow
def test_core_wheel_ships_templates(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
                   check=True, timeout=600)
    (wheel,) = tmp_path.glob("transfer_zoo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    pages = [p.relative_to(ROOT).as_posix() for p in (ROOT / "templates").rglob("*") if p.is_file()]
    assert len(pages) >= 9 and all(f"registry_server/{p}" in names for p in pages)  # every page, CSS and icon
    assert any(n.startswith("zoo_core/builtin/") for n in names)
