"""The repeated parts of the lineage page (a box and an arrow per version in the SVG, a row per version in the
table) written in Python, one escape per value: as a Jinja loop, a 1,000-version family cost 54 ms of CPU to
render (24 autoescaped expressions and three filters per version), most of the page's time. The page's frame
stays in templates/lineage.html; the output is the same markup the loop wrote."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from markupsafe import Markup, escape

from registry_server.graph import Layout


def svg_items(layout: Layout) -> Markup:
    """The graph's arrows, then its boxes (each a link to its version's page, unless external)."""
    out = [f'<path class="edge" d="{escape(e.path)}" marker-end="url(#arrow)"><title>{escape(e.relation)}</title>'
           "</path>" for e in layout.edges]
    size = f'<rect width="{layout.node_width}" height="{layout.node_height}" rx="8"/>'
    for n in layout.nodes:
        node_id, detail = escape(n.id), escape(n.detail)
        classes = "node" + (" external" if n.external else "") + (" current" if n.current else "") + \
            (f" status-{escape(n.status)}" if n.status else "")
        box = (f'<g class="{classes}" data-node="{node_id}" transform="translate({n.x},{n.y})">'
               f"<title>{node_id}{f' — {detail}' if n.detail else ''}</title>{size}"
               f'<text x="12" y="21" class="label">{escape(n.label)}</text>'
               f'<text x="12" y="40" class="detail">{detail}</text></g>')
        if n.href:
            box = (f'<a href="{escape(n.href)}" class="node-link" aria-label="{node_id}'
                   f'{f", {detail}" if n.detail else ""}">{box}</a>')
        out.append(box)
    return Markup("\n".join(out))


def family_rows(graph: dict[str, Any], href: Callable[[str], str]) -> Markup:
    """The family table's rows: version (a link, or the external source as code), generation, what it was derived
    from and how, its strategy and status."""
    parents_of: dict[str, list[dict[str, str]]] = {}
    for edge in graph["edges"]:
        parents_of.setdefault(edge["child"], []).append(edge)
    out = []
    for n in graph["nodes"]:
        node_id = escape(n["id"])
        parents = parents_of.get(n["id"], [])
        relations: dict[str, str] = {}  # Jinja's `unique`: case-insensitive, the first spelling kept
        for p in parents:
            relations.setdefault(p["relation"].lower(), p["relation"])
        version = (f"<code>{node_id}</code>" if n.get("external") else
                   f'<a href="{escape(href(n["id"]))}">{node_id}</a>')
        status = n.get("status") or ("external" if n.get("external") else "")
        current = ' class="current"' if n["id"] == graph["root"] else ""
        out.append(f"<tr{current}><td>{version}</td>"
                   f'<td class="num">{escape(n["depth"])}</td>'
                   f'<td>{", ".join(escape(p["parent"]) for p in parents)}</td>'
                   f'<td>{", ".join(escape(r) for r in relations.values())}</td>'
                   f'<td>{escape(n.get("strategy") or "")}</td><td>{escape(status)}</td></tr>')
    return Markup("\n".join(out))
