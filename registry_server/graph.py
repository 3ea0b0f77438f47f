"""Lineage graphs laid out on the server as SVG: no script, nothing fetched, readable at any size.

A layered layout, left to right: one column per generation (ancestors to the left of the version asked for,
descendants to the right), each column ordered by the mean row of its neighbours in the column before (the
barycentre heuristic of Sugiyama-style layouts), which keeps branches together and crossings few. Boxes keep a
fixed, legible size; a generation of more than MAX_ROWS versions wraps into sub-columns, so a family of 50 is a
compact block and the page scrolls sideways rather than shrinking the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NODE_W, NODE_H = 264, 52
COL_GAP, SUB_GAP, ROW_GAP, MARGIN = 72, 24, 14, 12
MAX_ROWS = 12
MAX_LABEL, MAX_DETAIL = 28, 36  # characters that fit a box at 13px bold / 12px


@dataclass
class PlacedNode:
    id: str
    x: int
    y: int
    label: str
    detail: str
    href: str | None
    external: bool
    current: bool
    status: str | None


@dataclass
class PlacedEdge:
    path: str
    relation: str


@dataclass
class Layout:
    width: int
    height: int
    nodes: list[PlacedNode]
    edges: list[PlacedEdge]
    node_width: int = NODE_W
    node_height: int = NODE_H


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _texts(node: dict[str, Any], relation: str | None) -> tuple[str, str]:
    """A box's two lines: `name@N` in bold, then namespace, relation to its parent, strategy and status (the full
    reference is the box's tooltip and the table below the graph)."""
    if node.get("external"):  # torchvision:resnet50.IMAGENET1K_V2 -> resnet50.IMAGENET1K_V2 / torchvision
        scheme, _, rest = node["id"].partition(":")
        return rest or scheme, f"{scheme} · external source" if rest else "external source"
    namespace, _, label = node["id"].partition("/")
    parts = [namespace]
    for part in (relation, node.get("strategy")):
        if part and part not in parts:
            parts.append(part)
    if node.get("status") in ("yanked", "deprecated", "draft"):
        parts.append(node["status"])
    return label, " · ".join(parts)


def layout(graph: dict[str, Any], href) -> Layout:
    """Place `graph` (the registry's lineage answer: nodes with depth, edges child -> parent); `href(node_id)`
    gives a version's page."""
    nodes = {n["id"]: n for n in graph["nodes"]}
    relation_of = {e["child"]: e["relation"] for e in graph["edges"]}
    neighbours: dict[str, list[str]] = {n: [] for n in nodes}
    for e in graph["edges"]:
        if e["child"] in nodes and e["parent"] in nodes:
            neighbours[e["child"]].append(e["parent"])
            neighbours[e["parent"]].append(e["child"])
    columns: dict[int, list[str]] = {}
    for n, node in nodes.items():  # one pass: a chain of 1,000 generations has 1,000 columns
        columns.setdefault(node["depth"], []).append(n)
    depths = sorted(columns)
    row: dict[str, float] = {}
    for d in depths:  # barycentre ordering against the column already placed
        columns[d] = sorted(columns[d], key=lambda n: (_barycentre(n, neighbours, row), n))
        for i, n in enumerate(columns[d]):
            row[n] = i
    # a generation taller than MAX_ROWS wraps into side-by-side sub-columns, so a fan-out of 60 fine-tunes of one
    # base stays a compact block next to its parent instead of a strip thousands of pixels tall
    rows_per = {d: min(len(columns[d]), MAX_ROWS) for d in depths}
    tallest = max(rows_per.values())
    height = MARGIN * 2 + tallest * NODE_H + (tallest - 1) * ROW_GAP
    placed_nodes: dict[str, PlacedNode] = {}
    x = MARGIN
    for d in depths:
        column, rows = columns[d], rows_per[d]
        for i, n in enumerate(column):
            sub, r = divmod(i, rows)
            in_sub = min(rows, len(column) - sub * rows)
            offset = (tallest - in_sub) * (NODE_H + ROW_GAP) / 2  # centre short columns
            node = nodes[n]
            label, detail = _texts(node, relation_of.get(n))
            placed_nodes[n] = PlacedNode(
                id=n, x=x + sub * (NODE_W + SUB_GAP), y=int(MARGIN + offset + r * (NODE_H + ROW_GAP)),
                label=_short(label, MAX_LABEL), detail=_short(detail, MAX_DETAIL),
                href=None if node.get("external") else href(n), external=bool(node.get("external")),
                current=n == graph["root"], status=node.get("status"))
        subs = -(-len(column) // rows)
        x += subs * NODE_W + (subs - 1) * SUB_GAP + COL_GAP
    edges = []
    for e in graph["edges"]:
        child, parent = placed_nodes.get(e["child"]), placed_nodes.get(e["parent"])
        if child is None or parent is None:
            continue
        x1, y1 = parent.x + NODE_W, parent.y + NODE_H // 2
        x2, y2 = child.x, child.y + NODE_H // 2
        bend = (x2 - x1) / 2
        edges.append(PlacedEdge(f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}", e["relation"]))
    width = x - COL_GAP + MARGIN
    return Layout(width, height, list(placed_nodes.values()), edges)


def _barycentre(node: str, neighbours: dict[str, list[str]], row: dict[str, float]) -> float:
    placed = [row[n] for n in neighbours[node] if n in row]
    return sum(placed) / len(placed) if placed else float("inf")
