"""The whole contract between Transfer Zoo and its plugins.

A plugin is a module (or object) with functions named like the hooks below, each decorated with
`zoo_core.hookimpl`, exposed through the `zoo` entry-point group:

    [project.entry-points.zoo]
    my_plugin = "my_package.zoo_plugin"

Every hook receives a `register` callback; call it once per thing the plugin contributes. Names are global
per kind: two plugins registering the same backbone name is an error that names both. The core's own
strategies, readers and weight sources are registered through these very hooks (see `zoo_core.builtin`).
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_backbones(register):
    """Call `register(spec)` with a `zoo_core.BackboneSpec` for each backbone architecture the plugin provides:
    its layer groups, described weights (`Weights`), input encoder (required for text) and adapter targets."""


@hookspec
def register_strategies(register):
    """Call `register(cls)` with a `zoo_core.Strategy` subclass (its fields are its parameters) per strategy;
    its class attributes and optional `prepare`/`export` steps are all the engine asks of it."""


@hookspec
def register_readers(register):
    """Call `register(cls)` with a `zoo_core.Reader` subclass (its fields are its arguments) per data format."""


@hookspec
def register_sources(register):
    """Call `register(source)` with a `zoo_core.WeightSource` for each `scheme:` of weight references it serves."""
