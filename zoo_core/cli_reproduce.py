"""`zoo reproduce`: a thin face over zoo_core.reproduce."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from zoo_core.cli_registry import REGISTRY


def register(app: typer.Typer, console) -> None:
    @app.command()
    def reproduce(ref: str = typer.Argument(..., help="NAMESPACE/NAME@VERSION (or an alias)"),
                  data: list[Path] = typer.Option(None, "--data", help="A folder to look for the recorded data "
                                                  "files in (by name, then by content); repeatable."),
                  chain: bool = typer.Option(False, "--chain", help="Re-run the ancestry from the first "
                                             "zoo-trained ancestor down, each step from the parent it rebuilt."),
                  record: bool = typer.Option(False, "--record", help="Store the outcome in the registry as an "
                                              "attestation on the version (each version of a chain)."),
                  tolerance: float = typer.Option(0.02, min=0, help="Test metrics must agree within tolerance × "
                                                  "max(1, |recorded|) when bit-identity is not expected."),
                  threads: int = typer.Option(None, min=1, help="Run with this many threads instead of the "
                                              "recorded number (bit-identity is then not expected)."),
                  output: Path = typer.Option(None, help="Keep the rebuilt checkpoints in this folder "
                                              "(default: a temporary folder, removed at the end)."),
                  registry: str = REGISTRY,
                  as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Rebuild a version from its recipe.yaml and compare: bit-identical, within tolerance, or differs."""
        from zoo_core import reproduce as rep
        from zoo_core.client import open_registry

        reg = open_registry(registry)
        workdir = output or Path(tempfile.mkdtemp(prefix="zoo-reproduce-"))
        options = {"data_dirs": data or [], "tolerance": tolerance, "threads": threads, "output": workdir,
                   "log": lambda m: None if as_json else console.print(f"[dim]{escape(m)}[/dim]")}
        try:
            links = rep.reproduce_chain(ref, reg, **options) if chain else [rep.reproduce(ref, reg, **options)]
            for link in links:
                link.attestation = rep.attest(reg, link) if record else None
        finally:
            if output is None:
                shutil.rmtree(workdir, ignore_errors=True)
        if as_json:
            typer.echo(json.dumps([{**link.as_dict(), "recorded": link.attestation is not None} for link in links],
                                  indent=2, default=str))
        else:
            for link in links:
                show(console, link)
        if any(link.outcome == "differs" for link in links):
            raise typer.Exit(1)


def show(console, link) -> None:
    table = Table("what", "recorded", "reproduced", "", title=f"{link.ref}: {link.outcome}")
    for row in link.rows:
        table.add_row(row.what, _cell(row.recorded), _cell(row.reproduced), "same" if row.same else "[bold]DIFFERS")
    console.print(table)
    if link.outcome == "bit-identical":
        summary = f"weights bit-for-bit identical (sha256 {link.sha256[:16]}…)"
    else:
        summary = (f"largest weight difference {link.max_weight_difference:.3g} ({link.max_weight_tensor}); "
                   f"expected {link.expected}; test metrics within {link.tolerance} × max(1, |recorded|)")
    console.print(f"[bold]{link.ref}[/bold]: {link.outcome} — {escape(summary)}", highlight=False)
    for note in link.notes:
        console.print(f"  note: {escape(note)}", highlight=False)
    if link.attestation is not None:
        console.print(f"  recorded as an attestation by {link.attestation['by']}", highlight=False)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str) and len(value) == 64:
        return value[:16] + "…"  # a sha256
    return escape(str(value)) if value is not None else "-"
