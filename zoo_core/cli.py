"""The `zoo` command: a thin face over zoo_core; every command has `--json` for scripts.

Commands import what they need when they run (plugins, torch): `zoo --help` and the registry commands stay fast."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from zoo_core.errors import UnknownNameError, ZooError

app = typer.Typer(help="Transfer Zoo: pretrained backbones, transfer recipes and a checkpoint registry.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
# Piped output is read by people too (CI logs, `| less`): don't squeeze tables into 80 columns there.
console = Console(width=None if sys.stdout.isatty() else 200)

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON array instead of a table.")


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f}M"


@app.command()
def plugins(as_json: bool = JSON_OPTION) -> None:
    """Installed plugins (the core's built-ins too) and what each contributes."""
    from zoo_core.plugins import get_catalog

    rows = [info.as_dict() for info in get_catalog().plugins.values()]
    if as_json:
        return _print_json(rows)
    table = Table("plugin", "version", "backbones", "strategies", "readers", "sources", "error")
    for row in rows:
        table.add_row(row["name"], row["version"] or "", _short(row["backbones"]), ", ".join(row["strategies"]),
                      ", ".join(row["readers"]), ", ".join(row["sources"]),
                      f"[red]{row['error']}[/red]" if row["error"] else "")
    console.print(table)


def _short(names: list[str], limit: int = 6) -> str:
    return ", ".join(names[:limit]) + (f" (+{len(names) - limit})" if len(names) > limit else "")


@app.command()
def backbones(pattern: str = typer.Argument(None, help="Wildcard filter, e.g. 'resnet*'."),
              as_json: bool = JSON_OPTION) -> None:
    """Registered backbones, optionally filtered by a wildcard pattern."""
    from zoo_core.plugins import get_catalog, summaries

    rows = summaries("backbone", pattern)
    if pattern and not rows:
        raise UnknownNameError("backbone pattern", pattern, get_catalog().names("backbone"))
    if as_json:
        return _print_json(rows)
    table = Table("name", "family", "modality", "params", "features", "groups", "weights", "plugin")
    for row in rows:
        # a lazily registered backbone (zoo-timm's) is listed unbuilt: `zoo info NAME` gives these three
        table.add_row(row["name"], row["family"], row["modality"], _or_blank(row["num_params"], _millions),
                      _or_blank(row["feature_dim"], str), _or_blank(row["groups"], lambda g: str(len(g))),
                      str(len(row["weights"])), row["plugin"])
    console.print(table)


def _or_blank(value: Any, show) -> str:
    return "" if value is None else show(value)


@app.command()
def strategies(as_json: bool = JSON_OPTION) -> None:
    """Registered adaptation strategies and their parameters."""
    from zoo_core.plugins import summaries

    rows = summaries("strategy")
    if as_json:
        return _print_json(rows)
    table = Table("name", "parameters", "description", "plugin")
    for row in rows:
        table.add_row(row["name"], ", ".join(row["parameters"]), row["description"], row["plugin"])
    console.print(table)


@app.command()
def readers(as_json: bool = JSON_OPTION) -> None:
    """Registered dataset readers and their arguments."""
    from zoo_core.plugins import summaries

    rows = summaries("reader")
    if as_json:
        return _print_json(rows)
    table = Table("name", "modality", "arguments", "description", "plugin")
    for row in rows:
        table.add_row(row["name"], row["modality"], ", ".join(row["arguments"]), row["description"], row["plugin"])
    console.print(table)


@app.command()
def sources(as_json: bool = JSON_OPTION) -> None:
    """Registered weight sources (the `scheme:` of a weight reference)."""
    from zoo_core.plugins import summaries

    rows = summaries("source")
    if as_json:
        return _print_json(rows)
    table = Table("scheme", "description", "plugin")
    for row in rows:
        table.add_row(row["name"], row["description"], row["plugin"])
    console.print(table)


@app.command()
def info(name: str = typer.Argument(None, help="A backbone, strategy, reader, weight source or plugin."),
         settings: bool = typer.Option(False, "--settings", help="Show every ZOO_* setting and where it came from."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Everything known about one backbone, strategy, reader, weight source or plugin; or the settings."""
    if settings:
        return _settings(as_json)
    if name is None:
        raise ZooError("usage: zoo info NAME, or zoo info --settings")
    from zoo_core.plugins import get_catalog

    catalog = get_catalog()
    found = None
    for kind in ("backbone", "strategy", "reader", "source"):
        if name in catalog.names(kind):
            found = {"kind": kind, **catalog.get(kind, name).summary(catalog.plugin_of(kind, name))}
            break
    if found is None and name in catalog.plugins:
        found = {"kind": "plugin", **catalog.plugins[name].as_dict()}
    if found is None:
        everything = [n for kind in ("backbone", "strategy", "reader", "source") for n in catalog.names(kind)]
        raise UnknownNameError("name", name, everything + list(catalog.plugins))
    if as_json:
        return _print_json(found)
    table = Table(show_header=False, title=f"{found['kind']} {name}")
    for key, value in found.items():
        if key == "weights":  # one line a tag: reference, data set, headline metric, preprocessing
            value = "\n".join(_weights_line(w) for w in value) or "-"
        elif isinstance(value, dict | list):
            value = json.dumps(value) if key != "groups" else ", ".join(value)
        table.add_row(key, str(value))
    console.print(table)


def _weights_line(weights: dict[str, Any]) -> str:
    pre = weights.get("preprocessing") or {}
    size = f"resize {pre['resize_size']}, crop {pre['input_size']}" if pre.get("kind") == "image" else ""
    metrics = "; ".join(f"{name} {', '.join(f'{k} {v}' for k, v in values.items())}"
                        for name, values in (weights.get("metrics") or {}).items() if isinstance(values, dict))
    parts = [weights["reference"] + (" (default)" if weights.get("default") else ""), weights.get("dataset") or "",
             metrics, size, weights.get("license") or ""]
    return " · ".join(p for p in parts if p)


def _settings(as_json: bool) -> None:
    from rich.markup import escape

    from zoo_core.settings import describe_settings

    rows = describe_settings()
    if as_json:
        return _print_json(rows)
    table = Table("variable", "value", "source", "description")
    for row in rows:
        value = row["value"]
        shown = "[dim](unset)[/dim]" if value is None else '""' if value == "" else escape(str(value))
        table.add_row(row["variable"], shown, row["source"], escape(row["description"]))
    console.print(table)


@app.command()
def train(recipe: Path = typer.Argument(..., help="Recipe YAML file."),
          set_: list[str] = typer.Option([], "--set", help="Override a field: --set train.epochs=3"),
          output: str = typer.Option(None, "--output", "-o", help="Checkpoint folder (overrides output:)."),
          overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
          as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
          nproc: int = typer.Option(None, "--nproc", min=1, help="Processes on this node, launched by torchrun "
                                                                   "(one a GPU on CUDA)."),
          nnodes: str = typer.Option("1", "--nnodes", help="Nodes (torchrun's --nnodes, e.g. 2 or 1:4)."),
          rdzv_endpoint: str = typer.Option(None, "--rdzv-endpoint",
                                            help="HOST:PORT where the nodes meet (the same on every node)."),
          rdzv_id: str = typer.Option("zoo", "--rdzv-id", help="Rendezvous id shared by the nodes of one job."),
          ) -> None:
    """Run a transfer recipe and write a documented checkpoint."""
    from zoo_core import distributed

    if nproc is not None or nnodes != "1":
        if distributed.launched():
            raise ZooError("--nproc/--nnodes start torchrun, but this process already runs under torchrun: drop them")
        child = ["train", str(recipe), *[f"--set={s}" for s in set_], *([f"--output={output}"] if output else []),
                 *(["--overwrite"] if overwrite else []), *(["--quiet"] if quiet else []),
                 *(["--json"] if as_json else [])]
        return distributed.launch(distributed.torchrun_arguments(nproc or 1, nnodes, rdzv_endpoint, rdzv_id, child))
    if not distributed.launched():
        return _train(recipe, set_, output, overwrite, quiet, as_json)
    try:
        _train(recipe, set_, output, overwrite, quiet, as_json)
    except Exception as exc:  # one line per failed rank; torchrun stops the others
        distributed.report_failure(exc, str(exc) if isinstance(exc, ZooError) else f"{type(exc).__name__}: {exc}")
        # Out at once, past the interpreter's finalization: there a gloo thread still holding the failed
        # collective's tensors can reach for the GIL and abort the process with C++'s "terminate called without
        # an active exception" on stderr (seen once, in CI, by test_distributed's failure test).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def _train(recipe: Path, set_: list[str], output: str | None, overwrite: bool, quiet: bool, as_json: bool) -> None:
    from zoo_core.recipe import load_recipe
    from zoo_core.run import run_recipe

    overrides = [*set_, *([f"output={output}"] if output else [])]
    parsed = load_recipe(recipe, overrides)
    log = (lambda m: None) if as_json else (lambda m: Console(stderr=True).print(m, highlight=False))
    result = run_recipe(parsed, progress=not quiet and not as_json, log=log, overwrite=overwrite)
    if os.environ.get("RANK", "0") != "0":
        return  # torchrun's other ranks: rank 0 prints the summary
    summary = {"checkpoint": str(result.checkpoint) if result.checkpoint else None, "metrics": result.metrics,
               "best_epoch": result.best_epoch, "seconds": round(result.seconds, 2)}
    if as_json:
        return _print_json(summary)
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    console.print(f"test: {metrics or 'no test split'} (best epoch {result.best_epoch}, {result.seconds:.1f} s)")
    if result.checkpoint:
        console.print(f"checkpoint: {result.checkpoint}")


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@app.command()
def predict(checkpoint: Path = typer.Argument(..., help="Checkpoint folder."),
            inputs: list[str] = typer.Argument(..., help="Image files, or texts (a .txt file: one text a line)."),
            top_k: int = typer.Option(1, "--top-k", min=1),
            as_json: bool = JSON_OPTION) -> None:
    """Labels and probabilities for image files or text lines."""
    from zoo_core.checkpoint import load_checkpoint
    from zoo_core.errors import DataError

    loaded = load_checkpoint(checkpoint)
    if loaded.model.spec.modality == "image":
        items = [Path(i) for i in inputs]
        for item in items:
            if not item.is_file() or item.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"'{item}' is not an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
    else:
        items = []
        for i in inputs:
            is_file = i.endswith(".txt") and Path(i).is_file()
            items += Path(i).read_text().splitlines() if is_file else [i]
    predictions = loaded.predict(items, top_k=top_k)
    rows = [{"input": str(item), "predictions": [{"label": label, "probability": round(p, 6)} for label, p in preds]}
            for item, preds in zip(items, predictions, strict=True)]
    if as_json:
        return _print_json(rows)
    for row in rows:
        shown = ", ".join(f"{p['label']} {p['probability']:.3f}" for p in row["predictions"])
        console.print(f"{shown}\t{row['input']}", highlight=False)


@app.command()
def features(recipe: Path = typer.Argument(..., help="Recipe whose base and data to use."),
             out: Path = typer.Argument(..., help="Output .npz file."),
             set_: list[str] = typer.Option([], "--set", help="Override a field: --set data.limit.train=100")) -> None:
    """Export the base backbone's features of the recipe's data splits to an .npz file."""
    import numpy as np

    from zoo_core.recipe import load_recipe
    from zoo_core.train import Engine

    engine = Engine(load_recipe(recipe, set_), progress=False)
    arrays = {}
    for name in ("train", "val", "test"):
        split = getattr(engine.data, name)
        if split is not None:
            arrays[f"{name}_features"] = engine.features(split).numpy()
            arrays[f"{name}_labels"] = split.labels
    arrays["classes"] = np.array(engine.data.classes)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(out)
    console.print(f"{out}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


@app.command()
def rank(data: Path = typer.Argument(..., help="Recipe or data-section YAML whose labelled training split to score."),
         refs: list[str] = typer.Argument(None, help="Weight references (torchvision:..., hf:..., file:...) or "
                                                     "registry models (ns/name@rev)."),
         candidates: list[str] = typer.Option([], "--candidates", "-c", help="Registry wildcard, e.g. 'acme/*'."),
         by: str = typer.Option("logme", "--by", help="Score to rank by: logme, hscore, leep, nce, ridge."),
         set_: list[str] = typer.Option([], "--set", help="Override a data field: --set labels_per_class=32"),
         registry: str = typer.Option(None, "--registry", "-r", help="Registry folder or server URL."),
         record: str = typer.Option(None, "--record", help="Record each registry candidate's scores and place in "
                                                           "the registry under this data set name."),
         as_json: bool = JSON_OPTION) -> None:
    """Rank candidate bases for your labelled data by transferability scores (no fine-tuning)."""
    from rich.markup import escape

    from zoo_core.recipe import set_override
    from zoo_core.transferability import SCORE_LABELS, load_data_section
    from zoo_core.transferability import rank as rank_candidates

    section, seed = load_data_section(data)
    for assignment in set_:
        set_override(section, assignment.removeprefix("data."))
    log = (lambda m: None) if as_json else (lambda m: Console(stderr=True).print(m, highlight=False))
    results = rank_candidates(section, [*(refs or []), *candidates], by=by, seed=seed, registry=registry,
                              record=record, log=log)
    if as_json:
        return _print_json([r.as_dict() for r in results])
    scored = [r for r in results if not r.error]
    # how far to trust it, measured (README, "Choosing a base"): the scores read frozen features, and the best
    # candidate after fine-tuning was not always the first
    caption = ("scores read frozen features: fine-tune the first two or three before you choose"
               if len(scored) > 2 else None)
    table = Table("#", "candidate", *SCORE_LABELS.values(), "s", "parent", "test accuracy", caption=caption,
                  title=f"ranked by {by} on {results[0].examples if results else 0} labelled examples")
    for i, r in enumerate(scored, 1):
        cells = [f"{r.scores[k]:.3f}" if k in r.scores else "-" for k in SCORE_LABELS]
        accuracy = r.metrics.get("accuracy")  # the test split's, as every zoo checkpoint reports it
        table.add_row(str(i), r.candidate, *cells, f"{r.seconds:.1f}", ", ".join(r.parents) or "-",
                      "-" if accuracy is None else f"{accuracy:.3f}")
    console.print(table)
    for r in results:
        if r.error:
            console.print(f"[red]not scored[/red] {r.candidate}: {escape(r.error)}", highlight=False)


from zoo_core import cli_registry, cli_reproduce  # noqa: E402  (registry commands live in their own modules)

cli_registry.register(app, console)
cli_reproduce.register(app, console)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 2, with no traceback."""
    try:
        app()
    except ZooError as exc:
        from rich.markup import escape  # messages may hold brackets ('transfer-zoo[server]'): not markup

        Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # torchrun --nproc-per-node N -m zoo_core.cli train recipe.yaml
    main()
