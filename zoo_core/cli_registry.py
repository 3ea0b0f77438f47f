"""`zoo push/pull/search/show/versions/lineage/alias/deprecate/yank/gc/token/serve`: thin faces over `Registry`.

Nothing here imports torch: these commands answer without loading model code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.table import Table
from rich.tree import Tree

from zoo_core.client import open_registry
from zoo_core.errors import ZooError
from zoo_core.registry.types import GC_GRACE

REGISTRY = typer.Option(None, "--registry", "-r",
                        help="Registry folder or server URL (default: $ZOO_REGISTRY or ~/.zoo).")
JSON = typer.Option(False, "--json", help="Print JSON.")


def register(app: typer.Typer, console) -> None:
    def out(data) -> None:
        typer.echo(json.dumps(data, indent=2, default=str))

    @app.command()
    def push(folder: Path = typer.Argument(..., help="Checkpoint folder."),
             model: str = typer.Argument(..., help="NAMESPACE/NAME"),
             draft: bool = typer.Option(False, "--draft", help="Keep it unpublished: out of `latest`, no alias."),
             parent: str = typer.Option(None, help="Parent: NAMESPACE/NAME@VERSION or an external source."),
             relation: str = typer.Option(None, help="finetune, adapter, feature-extraction, quantized, merge"),
             private: bool = typer.Option(False, "--private"),
             alias: list[str] = typer.Option(None, "--alias", help="Move this alias (production, staging, ...) to "
                                             "the new version in the same step; repeatable."),
             registry: str = REGISTRY, as_json: bool = JSON) -> None:
        """Publish a checkpoint folder as the next version of a model."""
        info = open_registry(registry).push(folder, model, status="draft" if draft else "published", parent=parent,
                                       relation=relation, visibility="private" if private else None,
                                       aliases=alias or None)
        if as_json:
            return out(info.as_dict())
        console.print(f"{info.model_id}@{info.number} {info.status} (commit {info.commit[:12]}, "
                      f"{len(info.files)} files, aliases: {', '.join(info.aliases) or '-'})")

    @app.command("import")
    def import_(source: str = typer.Argument(..., help="A Hugging Face-layout folder, or hf:ORG/NAME[@REVISION]."),
                model: str = typer.Argument(..., help="NAMESPACE/NAME"),
                draft: bool = typer.Option(False, "--draft", help="Register as a draft (out of `latest`)."),
                private: bool = typer.Option(False, "--private"),
                registry: str = REGISTRY, as_json: bool = JSON) -> None:
        """Register an existing Hugging Face model as a root of lineage, keeping its card."""
        from zoo_core.importing import import_model

        info = import_model(open_registry(registry), source, model, draft=draft,
                            visibility="private" if private else None)
        if as_json:
            return out(info.as_dict())
        console.print(f"{info.model_id}@{info.number} {info.status}, imported from {info.parents[0]['ref']}")

    @app.command()
    def pull(ref: str = typer.Argument(..., help="NAMESPACE/NAME[@VERSION|@ALIAS]"),
             dest: Path = typer.Argument(None, help="Folder to write (default: the registry's cache)."),
             registry: str = REGISTRY) -> None:
        """Fetch a version's files, each checked by sha256."""
        console.print(str(open_registry(registry).pull(ref, dest)))

    @app.command()
    def search(query: str = typer.Argument(None), task: str = None, modality: str = None, backbone: str = None,
               family: str = None, strategy: str = None, license: str = None, tag: str = None,
               documented: bool = typer.Option(None, "--documented/--undocumented",
                                               help="only models whose card is complete / incomplete"),
               metric: str = typer.Option(None, help="e.g. 'accuracy>=0.9'"),
               descendant_of: str = typer.Option(None, help="only descendants of this version"),
               relation: str = None,
               reproduced: bool = typer.Option(False, "--reproduced", help="only models whose latest version was "
                                               "reproduced (zoo reproduce --record)"),
               sort: str = typer.Option("updated", help="updated, name or a metric"),
               page: int = 1, per_page: int = 20, registry: str = REGISTRY, as_json: bool = JSON) -> None:
        """Search models: free text, filters, metric and lineage filters."""
        from zoo_core.registry.lite import open_lite
        from zoo_core.registry.search_terms import parse_metric

        filters = dict(task=task, modality=modality, backbone=backbone, family=family, strategy=strategy,
                       license=license, tag=tag, documented=documented, metric=parse_metric(metric),
                       descendant_of=descendant_of, relation=relation, reproduced=reproduced or None, sort=sort,
                       page=page, per_page=per_page)
        # a local SQLite registry answers through sqlite3 alone (lite.py: no SQLAlchemy to import); else, or for
        # what that path leaves to the service, the registry's own search
        lite = open_lite(registry)
        found = lite.search(query, **filters) if lite is not None else None
        if found is None:
            found = open_registry(registry).search(query, **filters)
        if as_json:
            return out(found)
        table = Table("model", "latest", "backbone", "strategy", "metrics", "aliases", title=f"{found['total']} models")
        for r in found["results"]:
            aliases = [f"{a}→{v['number']}" for v in r["versions"] for a in v["aliases"]]
            table.add_row(r["id"], str(r["latest"]), r["backbone"] or "", r["strategy"] or "",
                          ", ".join(f"{k} {v:.3f}" for k, v in r["metrics"].items() if k != "loss"), ", ".join(aliases))
        console.print(table)

    @app.command()
    def show(ref: str = typer.Argument(...), registry: str = REGISTRY, as_json: bool = JSON) -> None:
        """A version: status, metrics, files, parents."""
        from zoo_core.registry.lite import open_lite

        lite = open_lite(registry)  # a local SQLite registry: sqlite3 alone (lite.py), as for search
        info = (lite.show(ref) if lite is not None else None) or open_registry(registry).resolve(ref)
        if as_json:
            return out(info.as_dict())
        console.print(f"[bold]{info.model_id}@{info.number}[/bold] {info.status}  commit {info.commit}")
        console.print(f"aliases: {', '.join(info.aliases) or '-'}   backbone: {info.backbone}   "
                      f"strategy: {info.strategy}")
        console.print("metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in info.metrics.items()))
        console.print("card: complete" if info.card_complete else
                      f"card: [yellow]incomplete[/yellow], lacks {', '.join(info.card_missing)}")
        if info.message:
            console.print(f"message: {info.message}")
        parents = [f"{p['ref'] or 'a private model'} ({p['relation']})" for p in info.parents]
        console.print("parents: " + (", ".join(parents) or "-"))
        for a in info.attestations:
            env = a["environment"]
            console.print(f"reproduction: {a['outcome']} by {a['by']} on {a['at'][:19]} ({env.get('device', '?')}, "
                          f"{env.get('cpu_capability', '?')}, torch {env.get('versions', {}).get('torch', '?')})",
                          highlight=False)
        for r in info.rankings:
            console.print(f"ranked: #{r['rank']} of {r['of']} for {r['dataset']} by {r['by']} {r['score']:.4g} "
                          f"({r['examples']} examples, recorded by {r['recorded_by']} on {r['at'][:10]})",
                          highlight=False)
        table = Table("file", "size", "sha256")
        for f in info.files:
            table.add_row(f["path"], str(f["size"]), f["sha256"])
        console.print(table)

    @app.command()
    def versions(model: str, registry: str = REGISTRY, as_json: bool = JSON) -> None:
        """All versions of a model."""
        from zoo_core.registry.lite import open_lite

        lite = open_lite(registry)  # a local SQLite registry: sqlite3 alone (lite.py), as for search
        rows = lite.versions(model) if lite is not None else None
        if rows is None:
            rows = open_registry(registry).versions(model)
        if as_json:
            return out([r.as_dict() for r in rows])
        table = Table("version", "status", "aliases", "card", "strategy", "metrics", "created", "message")
        for r in rows:
            table.add_row(str(r.number), r.status, ", ".join(r.aliases), "complete" if r.card_complete else
                          "incomplete", r.strategy or "",
                          ", ".join(f"{k} {v:.3f}" for k, v in r.metrics.items() if k != "loss"), r.created_at[:19],
                          (r.message or "").split("\n")[0])
        console.print(table)

    @app.command()
    def lineage(ref: str, ancestors: bool = typer.Option(False, "--ancestors"),
                descendants: bool = typer.Option(False, "--descendants"),
                registry: str = REGISTRY, as_json: bool = JSON) -> None:
        """The family graph of a version (one recursive query)."""
        direction = "ancestors" if ancestors and not descendants else "descendants" if descendants and not ancestors \
            else "both"
        graph = open_registry(registry).lineage(ref, direction)
        if as_json:
            return out(graph)
        children: dict[str, list[tuple[str, str]]] = {}
        for edge in graph["edges"]:
            children.setdefault(edge["parent"], []).append((edge["child"], edge["relation"]))
        child_ids = {e["child"] for e in graph["edges"]}
        roots = [n["id"] for n in graph["nodes"] if n["id"] not in child_ids]
        tree = Tree(f"lineage of {graph['root']}")

        def grow(node, name, seen):
            for child, relation in children.get(name, []):
                if child not in seen:
                    grow(node.add(f"{child} [dim]({relation})[/dim]" + (" ◀" if child == graph["root"] else "")),
                         child, seen | {child})

        for root in roots:
            grow(tree.add(root + (" ◀" if root == graph["root"] else "")), root, {root})
        console.print(tree)

    @app.command()
    def alias(model: str, name: str = typer.Argument(None), version: int = typer.Argument(None),
              history: bool = typer.Option(False, "--history", help="Show who moved which alias when."),
              registry: str = REGISTRY, as_json: bool = JSON) -> None:
        """Point an alias (production, staging, ...) at a version, or show the alias history."""
        reg = open_registry(registry)
        if history:
            events = reg.alias_history(model)
            if as_json:
                return out(events)
            for e in events:
                console.print(f"{e['at'][:19]}  {e['alias']}: {e['from'] or '-'} → {e['to'] or '-'}  by {e['actor']}")
            return None
        if name is None or version is None:
            raise ZooError("usage: zoo alias NAMESPACE/NAME ALIAS VERSION, or zoo alias NAMESPACE/NAME --history")
        info = reg.set_alias(model, name, version)
        console.print(f"{model}@{name} → {info.number}")

    @app.command()
    def deprecate(ref: str, reason: str = typer.Option(None), registry: str = REGISTRY) -> None:
        """Mark a version deprecated (still downloadable)."""
        info = open_registry(registry).deprecate(ref, reason)
        console.print(f"{info.model_id}@{info.number} deprecated")

    @app.command()
    def yank(ref: str, reason: str = typer.Option(..., help="Why: shown to whoever asks for it."),
             registry: str = REGISTRY) -> None:
        """Withdraw a version: it is no longer served, and its aliases move away."""
        info = open_registry(registry).yank(ref, reason)
        console.print(f"{info.model_id}@{info.number} yanked")

    @app.command()
    def gc(registry: str = REGISTRY,
           grace: float = typer.Option(GC_GRACE, min=0, help="Keep unreferenced blobs and uploads younger than this "
                                                           "many seconds (pushes in flight own them).")) -> None:
        """Remove blobs that no version references (left by failed pushes), once older than the grace period."""
        result = open_registry(registry).gc(grace)
        console.print(f"removed {result['removed']} blobs ({result['bytes']} bytes)")

    @app.command()
    def serve(registry: str = REGISTRY, host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8000),
              max_upload: int = typer.Option(None, help="Largest accepted file, in bytes."),
              workers: int = typer.Option(1, min=1, help="Server processes sharing the port (SQLite in WAL mode "
                                                         "or PostgreSQL; see ZOO_DATABASE_URL)."),
              card_policy: str = typer.Option(None, help="required: a complete card to publish; aliases (default, "
                                                         "or $ZOO_CARD_POLICY): aliases other than `latest` need "
                                                         "one; off: not enforced.")) -> None:
        """Serve the registry over HTTP: JSON API under /api, OpenAPI docs at /docs."""
        try:
            import uvicorn

            from registry_server.app import create_app, freeze_startup
            from registry_server.logs import log_config
            from registry_server.slowheaders import HeaderTimeoutProtocol
        except ModuleNotFoundError as exc:  # the server's dependencies are the [server] extra
            raise ZooError(f"zoo serve needs the server's dependencies ({exc.name} is missing): "
                           "pip install 'transfer-zoo[server]'") from None

        console.print(f"Transfer Zoo catalog on http://{host}:{port}/  (JSON API under /api, docs at /docs)")
        app = create_app(registry, max_upload=max_upload, card_policy=card_policy)  # also migrates, once
        if workers == 1:
            freeze_startup()  # collections no longer scan what starting made (app.py)
            # logs are written from their own thread: a stderr nobody reads must not stop the server (logs.py)
            uvicorn.run(app, host=host, port=port, log_level="warning", http=HeaderTimeoutProtocol,
                        log_config=log_config())
            return
        # worker processes build their own app from the environment (uvicorn imports the factory in each)
        os.environ["ZOO_REGISTRY"] = str(Path(registry).expanduser().resolve())
        if max_upload:
            os.environ["ZOO_MAX_UPLOAD"] = str(max_upload)
        if card_policy:
            os.environ["ZOO_CARD_POLICY"] = card_policy
        uvicorn.run("registry_server.app:served_app", factory=True, workers=workers, host=host, port=port,
                    log_level="warning", http=HeaderTimeoutProtocol, log_config=log_config())

    token_app = typer.Typer(help="API tokens for the registry server.")

    @token_app.command("create")
    def token_create(namespace: str, name: str = typer.Option("default"),
                     expires_days: float = typer.Option(None, "--expires-days", help="Lifetime in days "
                                                        "(default: until revoked)."),
                     read_only: bool = typer.Option(False, "--read-only", help="Reads NAMESPACE's private models, "
                                                    "writes nothing."),
                     registry: str = REGISTRY) -> None:
        """Create a token for NAMESPACE (reads its private models, writes unless --read-only); shown once, stored
        hashed."""
        expires_in = expires_days * 86400 if expires_days is not None else None
        typer.echo(open_registry(registry).create_token(namespace, name, expires_in=expires_in, read_only=read_only))

    @token_app.command("list")
    def token_list(namespace: str = typer.Argument(None, help="Only this namespace's tokens."),
                   registry: str = REGISTRY, as_json: bool = JSON) -> None:
        """Every token: id, namespace, name, state, read-only, created, expires, last used (never the secret)."""
        tokens = open_registry(registry).list_tokens(namespace)
        if as_json:
            return out(tokens)
        table = Table("id", "namespace", "name", "state", "access", "created", "expires", "last used")
        for t in tokens:
            table.add_row(str(t["id"]), t["namespace"], t["name"], t["state"],
                          "read" if t["read_only"] else "read, write", t["created_at"][:16],
                          (t["expires_at"] or "never")[:16], (t["last_used_at"] or "never")[:16])
        console.print(table)

    @token_app.command("revoke")
    def token_revoke(token_id: int = typer.Argument(..., help="The token's id (zoo token list)."),
                     registry: str = REGISTRY) -> None:
        """Revoke a token: refused from the next request on."""
        t = open_registry(registry).revoke_token(token_id)
        console.print(f"revoked token {t['id']} ('{t['name']}' of {t['namespace']}, last used "
                      f"{(t['last_used_at'] or 'never')[:16]})")

    app.add_typer(token_app, name="token")
