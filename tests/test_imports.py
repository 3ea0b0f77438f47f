"""The registry, the server, the HTTP client and the registry commands never import torch (nor torchvision or
transformers): each runs in a fresh interpreter that then reports which of those modules it loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cards import complete_card

HEAVY = ("torch", "torchvision", "transformers")
REPORT = f"\nimport sys\nprint('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"


def heavy_modules(code: str, env: dict[str, str] | None = None) -> list[str]:
    """Run `code` in a fresh interpreter; the heavy modules it left in sys.modules."""
    import os

    result = subprocess.run([sys.executable, "-c", code + REPORT], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("HEAVY="), result.stdout
    return [m for m in line[len("HEAVY="):].split(",") if m]


def cli(*args: str) -> str:
    """Code that runs `zoo ARGS` in-process and fails unless the command succeeded."""
    return (f"import sys\nsys.argv = ['zoo', *{list(args)!r}]\nfrom zoo_core.cli import main\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n")


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    """An embedded registry holding acme/m@1 (published, aliased production)."""
    from zoo_core.client import open_registry

    root = tmp_path_factory.mktemp("imports")
    folder = root / "checkpoint"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "config.json").write_text(json.dumps({"backbone": {"name": "resnet18", "family": "resnet"}}))
    (folder / "README.md").write_text(complete_card())
    registry = open_registry(root / "zoo")
    registry.push(folder, "acme/m")
    registry.set_alias("acme/m", "production", 1)
    registry.service.engine.dispose()
    return root


def test_the_probe_sees_torch_when_model_code_is_used():
    assert "torch" in heavy_modules("import zoo_core\nzoo_core.BackboneSpec")


@pytest.mark.parametrize("code", [
    "import zoo_core",
    "import zoo_core\nzoo_core.open_registry, zoo_core.Registry, zoo_core.import_model, zoo_core.ZooError",
    "import zoo_core.registry.service",
    "import zoo_core.remote\nzoo_core.open_registry('http://127.0.0.1:9', token='t')",
    "import zoo_core.settings\nzoo_core.settings.get_settings()",
    cli("--help"),
], ids=["zoo_core", "public-registry-names", "registry.service", "http-client", "settings", "zoo --help"])
def test_imports_without_torch(code):
    assert heavy_modules(code) == []


def test_the_server_app_without_torch(tmp_path):
    assert heavy_modules(f"from registry_server.app import create_app\ncreate_app({str(tmp_path / 'zoo')!r})") == []


@pytest.mark.parametrize("args", [
    ("search",), ("search", "m", "--json"), ("show", "acme/m@production"), ("versions", "acme/m"),
    ("alias", "acme/m", "staging", "1"), ("alias", "acme/m", "--history"), ("lineage", "acme/m"),
    ("pull", "acme/m@1", "{dest}"), ("info", "--settings"),
], ids=lambda a: " ".join(a[:2]))
def test_registry_commands_without_torch(registry, args):
    args = tuple(a.format(dest=registry / "pulled") for a in args)
    assert heavy_modules(cli(*args), env={"ZOO_REGISTRY": str(registry / "zoo")}) == []
    if args[0] == "pull":
        assert (registry / "pulled" / "model.safetensors").read_bytes() == b"weights"


def test_serve_without_the_server_extra_says_what_to_install(tmp_path):
    # sys.modules[name] = None makes `import name` fail as if it were not installed
    code = (f"import sys\nsys.modules['fastapi'] = None\nsys.argv = ['zoo', 'serve', '-r', {str(tmp_path)!r}]\n"
            "from zoo_core.cli import main\nmain()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "pip install 'transfer-zoo[server]'" in result.stderr and "fastapi" in result.stderr


def test_every_public_name_resolves_lazily():
    """`__all__` and the lazy table name the same things, and each resolves to the object its module defines."""
    import importlib

    import zoo_core

    assert sorted(zoo_core.__all__) == sorted(zoo_core._LAZY)
    for name, module in zoo_core._LAZY.items():
        assert getattr(zoo_core, name) is getattr(importlib.import_module(f"zoo_core.{module}"), name)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        zoo_core.nonsense  # noqa: B018


def test_training_does_not_import_scikit_learn_or_scipy():
    """The GPU check's wheelhouse leaves scikit-learn and scipy out (scripts/wheelhouse.sh): the engine and its
    metrics must not need them; only the linear probe's fit and `zoo rank` import them, when they run."""
    code = ("import sys\nimport zoo_core.train, zoo_core.metrics, zoo_core.probe\n"
            "assert not {'sklearn', 'scipy'} & set(sys.modules), sorted({'sklearn', 'scipy'} & set(sys.modules))\n")
    assert heavy_modules(code) == ["torch"]
