"""Plugin discovery and the catalog of everything plugins contribute.

Built-ins are default plugins registered through the same hooks as third-party ones. Entry points of the
`zoo` group are loaded one by one, so a plugin that fails to import is reported by name and the rest still
load. `ZOO_LOAD_PLUGINS=a,b` loads only those entry points (empty: none besides the built-ins);
`ZOO_TRACE_PLUGINS=1` prints every hook call, for debugging a plugin.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import platform
import re
import sys
import types
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, entry_points, packages_distributions, requires, version
from typing import Any

import pluggy

from zoo_core import hookspecs
from zoo_core.errors import DuplicateNameError, UnknownNameError
from zoo_core.settings import get_settings

ENTRY_POINT_GROUP = "zoo"
CORE_DISTRIBUTION = "transfer-zoo"
DEFAULT_PLUGINS = (
    "zoo_core.builtin.strategies",
    "zoo_core.builtin.readers",
    "zoo_core.builtin.sources",
)
# kind -> the hook that contributes it; the order is the order of `zoo plugins` columns.
KINDS = {
    "backbone": "register_backbones",
    "strategy": "register_strategies",
    "reader": "register_readers",
    "source": "register_sources",
}


@dataclass(frozen=True)
class LoadedPlugin:
    """What loading one plugin gave: its version, the distribution that installed it, and the error if it
    failed to import."""

    name: str
    version: str | None
    builtin: bool
    load_error: str | None = None
    distribution: str | None = None


@dataclass
class PluginInfo:
    """One plugin as `zoo plugins` shows it."""

    name: str
    version: str | None
    builtin: bool
    error: str | None = None
    contributions: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in KINDS})

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "builtin": self.builtin,
            "backbones": sorted(self.contributions["backbone"], key=natural_key),
            "strategies": sorted(self.contributions["strategy"]),
            "readers": sorted(self.contributions["reader"]),
            "sources": sorted(self.contributions["source"]),
            "error": self.error,
        }


class Catalog:
    """Everything the loaded plugins registered, by kind and name, with the plugin that supplied each."""

    def __init__(self, pm: pluggy.PluginManager, loaded: dict[str, LoadedPlugin]):
        self.pm = pm
        self.loaded = loaded
        self.plugins = {n: PluginInfo(n, p.version, p.builtin, p.load_error) for n, p in loaded.items()}
        self._items: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        self._owner: dict[tuple[str, str], str] = {}
        self.conflicts: list[str] = []
        for kind, hook_name in KINDS.items():
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                impl.function(register=self._registrar(kind, impl.plugin_name))

    def _registrar(self, kind: str, plugin: str):
        def register(obj: Any) -> None:
            name = obj.name
            previous = self._owner.get((kind, name))
            if previous is not None:
                message = f"{kind} '{name}' is registered by both plugin '{previous}' and plugin '{plugin}'"
                self.conflicts.append(message)
                for owner in {previous, plugin}:
                    info = self.plugins[owner]
                    info.error = f"{info.error}; {message}" if info.error else message
                return
            self._items[kind][name] = obj
            self._owner[(kind, name)] = plugin
            self.plugins[plugin].contributions[kind].append(name)

        return register

    def check(self) -> None:
        """Raise if two plugins claimed one name: which of them to use is the user's decision, not ours."""
        if self.conflicts:
            raise DuplicateNameError(
                "; ".join(self.conflicts) + " (uninstall one, or choose plugins with ZOO_LOAD_PLUGINS)"
            )

    def names(self, kind: str, pattern: str | None = None) -> list[str]:
        self.check()
        names = self._items[kind]
        if pattern:
            names = [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern.lower())]
        return sorted(names, key=natural_key)

    def get(self, kind: str, name: str) -> Any:
        """What a plugin registered under `name`; a backbone registered lazily is resolved to its spec."""
        entry = self.entry(kind, name)
        if kind == "backbone":
            from zoo_core.backbone import LazyBackbone

            if isinstance(entry, LazyBackbone):
                return entry.spec
        return entry

    def entry(self, kind: str, name: str) -> Any:
        """What a plugin registered under `name`, as registered (a `LazyBackbone` stays unresolved)."""
        self.check()
        try:
            return self._items[kind][name]
        except KeyError:
            raise UnknownNameError(kind, name, self._items[kind]) from None

    def plugin_of(self, kind: str, name: str) -> str:
        return self._owner[(kind, name)]

    def versions_for(self, uses: Iterable[tuple[str, str]], extra: Iterable[str] = ()) -> dict[str, str]:
        """Versions of what a run used: python, torch and the core, the distribution of the plugin behind each
        `(kind, name)` with its installed requirements (a plugin's own libraries: torchvision, transformers), and
        the distributions named in `extra` (a strategy's `requires`). The core's own requirements are not listed."""
        found = {"python": platform.python_version()}
        wanted = [CORE_DISTRIBUTION, "torch", *extra]
        for kind, name in uses:
            owner = self._owner.get((kind, name))
            dist = self.loaded[owner].distribution if owner in self.loaded else None
            if dist and dist != CORE_DISTRIBUTION:
                wanted += [dist, *_requirements(dist)]
        for dist in wanted:
            with contextlib.suppress(PackageNotFoundError):
                found.setdefault(_canonical(dist), version(dist))
        return found


def natural_key(name: str) -> list[Any]:
    """Sort resnet18 before resnet101 (timm's natural sort)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _selected(name: str) -> bool:
    chosen = get_settings().load_plugins
    if chosen is None:
        return True
    return name in {part.strip() for part in chosen.split(",") if part.strip()}


def _entry_point_version(ep) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.version if dist is not None else None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(dist: str) -> list[str]:
    """Names of `dist`'s unconditional requirements (extras such as `test` are left out)."""
    names = []
    for line in requires(dist) or ():
        if "extra ==" in line.replace("extra==", "extra =="):
            continue
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if match:
            names.append(match.group(1))
    return names


def _distribution_of(plugin: object) -> str | None:
    """The installed distribution holding a plugin object registered at run time, if any."""
    module = plugin.__name__ if isinstance(plugin, types.ModuleType) else type(plugin).__module__
    dists = packages_distributions().get(module.partition(".")[0], [])
    return dists[0] if dists else None


def create_plugin_manager() -> tuple[pluggy.PluginManager, dict[str, LoadedPlugin]]:
    """A fresh manager with the built-ins and the selected entry points (each loaded in its own try)."""
    pm = pluggy.PluginManager("zoo")
    pm.add_hookspecs(hookspecs)
    from zoo_core import __version__

    infos: dict[str, LoadedPlugin] = {}
    for module_path in DEFAULT_PLUGINS:
        module = importlib.import_module(module_path)
        pm.register(module, name=module_path)
        infos[module_path] = LoadedPlugin(module_path, __version__, builtin=True, distribution=CORE_DISTRIBUTION)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if not _selected(ep.name) or ep.name in infos:
            continue
        version = _entry_point_version(ep)
        dist = ep.dist.name if getattr(ep, "dist", None) is not None else None
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # a broken plugin must not take the others (or `zoo plugins`) down
            error = f"failed to load: {type(exc).__name__}: {exc}"
            warnings.warn(f"zoo plugin '{ep.name}' {error}", RuntimeWarning, stacklevel=2)
            infos[ep.name] = LoadedPlugin(ep.name, version, builtin=False, load_error=error, distribution=dist)
            continue
        infos[ep.name] = LoadedPlugin(ep.name, version, builtin=False, distribution=dist)
    pm.check_pending()
    if get_settings().trace_plugins:
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return pm, infos


_catalog: Catalog | None = None


def get_catalog() -> Catalog:
    """The process-wide catalog, built on first use."""
    global _catalog
    if _catalog is None:
        pm, infos = create_plugin_manager()
        _catalog = Catalog(pm, infos)
    return _catalog


def reset_catalog() -> None:
    """Forget the loaded plugins (tests that change ZOO_LOAD_PLUGINS or register plugins call this)."""
    global _catalog
    _catalog = None


def register_plugin(plugin: object, name: str) -> None:
    """Register a plugin object at run time (tests, notebooks); the catalog is rebuilt at once."""
    global _catalog
    catalog = get_catalog()
    catalog.pm.register(plugin, name=name)
    catalog.pm.check_pending()
    loaded = LoadedPlugin(name, None, builtin=False, distribution=_distribution_of(plugin))
    _catalog = Catalog(catalog.pm, {**catalog.loaded, name: loaded})


def unregister_plugin(name: str) -> None:
    global _catalog
    catalog = get_catalog()
    catalog.pm.unregister(name=name)
    _catalog = Catalog(catalog.pm, {n: p for n, p in catalog.loaded.items() if n != name})


# Lookups in timm's style; the public API re-exports them.
def summaries(kind: str, pattern: str | None = None) -> list[dict[str, Any]]:
    """What `zoo backbones|strategies|readers|sources` and the catalog's plugins page show: one dict a name.

    Args:
        kind: ``backbone``, ``strategy``, ``reader`` or ``source``.
        pattern: optional shell-style wildcard on the names, case-insensitive.

    Returns:
        One plain, JSON-ready dict per name, in natural order, with the plugin that supplied it.

    Example:
        >>> [s["name"] for s in summaries("source")][:2]
        ['file', 'hf']
    """
    catalog = get_catalog()
    # entries as registered: a lazily registered backbone lists its metadata without being built
    return [catalog.entry(kind, name).summary(catalog.plugin_of(kind, name))
            for name in catalog.names(kind, pattern)]


def list_backbones(pattern: str | None = None) -> list[str]:
    """Names of the registered backbones, from every plugin, in natural order (resnet18 before resnet101).

    Args:
        pattern: shell-style wildcard (``resnet*``, ``*bert*``), case-insensitive; None lists all.

    Returns:
        The matching names.

    Example:
        >>> list_backbones("vgg1?_bn")
        ['vgg11_bn', 'vgg13_bn', 'vgg16_bn', 'vgg19_bn']
    """
    return get_catalog().names("backbone", pattern)


def get_backbone(name: str):
    """The `BackboneSpec` registered under `name`.

    Args:
        name: a backbone name, as `list_backbones` gives it.

    Returns:
        The spec: its layer groups, preprocessing, described weights (`spec.weights`) and encoder.

    Raises:
        UnknownNameError: no plugin registered that name (the message suggests close names).

    Example:
        >>> spec = get_backbone("resnet50")
        >>> spec.feature_dim, [w.tag for w in spec.weights]
        (2048, ['IMAGENET1K_V1', 'IMAGENET1K_V2'])
    """
    return get_catalog().get("backbone", name)


def list_strategies(pattern: str | None = None) -> list[str]:
    """Names of the registered adaptation strategies, built-in and from plugins, sorted.

    Args:
        pattern: shell-style wildcard, case-insensitive; None lists all.

    Returns:
        The matching names.

    Example:
        >>> list_strategies("*freeze*")
        ['freeze', 'gradual-unfreeze']
    """
    return get_catalog().names("strategy", pattern)


def get_strategy(name: str):
    """The `Strategy` subclass registered under `name`; instantiate it with the strategy's parameters.

    Args:
        name: a strategy name, as `list_strategies` gives it.

    Returns:
        The class (a pydantic model: its fields are the parameters a recipe's `strategy:` block sets).

    Raises:
        UnknownNameError: no plugin registered that name (the message suggests close names).

    Example:
        >>> lora = get_strategy("lora")(r=4)
        >>> lora.relation, lora.r
        ('adapter', 4)
    """
    return get_catalog().get("strategy", name)


def get_reader(name: str):
    """The `Reader` subclass registered under `name` (a recipe's `data.reader`).

    Args:
        name: a reader name, e.g. ``npz``, ``imagefolder``, ``csv``.

    Returns:
        The class; its fields are the reader's arguments (a recipe's `data.args`).

    Raises:
        UnknownNameError: no plugin registered that name.

    Example:
        >>> data = get_reader("npz")(path="examples/data/pneumoniamnist_sample.npz").read()
    """
    return get_catalog().get("reader", name)


def get_source(scheme: str):
    """The `WeightSource` serving weight references that start with ``scheme:``.

    Args:
        scheme: e.g. ``torchvision``, ``hf``, ``file``, ``zoo``, ``scratch``.

    Returns:
        The source instance; `source.load(reference)` gives `PretrainedWeights`.

    Raises:
        UnknownNameError: no plugin serves that scheme.

    Example:
        >>> get_source("scratch").load("resnet18").origin
        'scratch:resnet18'
    """
    return get_catalog().get("source", scheme)
