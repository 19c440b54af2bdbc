"""Server-side layout of the pipeline graph: layered left to right, ordered to cut crossings."""

from dataclasses import dataclass, field

NODE_W = 240
NODE_H = 118
GAP_X = 70
GAP_Y = 22
PAD = 16


@dataclass
class Node:
    key: str  # "warehouse:<name>" or "stage:<name>"
    kind: str
    name: str
    obj: object
    parents: list[str] = field(default_factory=list)
    rank: int = 0
    order: float = 0.0
    x: int = 0
    y: int = 0


@dataclass
class Edge:
    source: Node
    target: Node

    @property
    def path(self) -> str:
        x1, y1 = self.source.x + NODE_W, self.source.y + NODE_H // 2
        x2, y2 = self.target.x, self.target.y + NODE_H // 2
        bend = (x2 - x1) / 2
        return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"


@dataclass
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def layout(warehouses: list, stage_views: list) -> Layout:
    """Rank = longest path from a Warehouse; within a rank, nodes sit at the mean position of
    their parents (barycentre heuristic, two sweeps), which keeps typical pipelines crossing-free."""
    nodes: dict[str, Node] = {}
    for w in warehouses:
        nodes[f"warehouse:{w.name}"] = Node(f"warehouse:{w.name}", "warehouse", w.name, w)
    for view in stage_views:
        parents = [f"warehouse:{n}" for n in view.warehouses] + [
            f"stage:{n}" for n in view.upstream
        ]
        nodes[f"stage:{view.stage.name}"] = Node(
            f"stage:{view.stage.name}", "stage", view.stage.name, view, parents
        )
    for node in nodes.values():
        node.parents = [p for p in node.parents if p in nodes]

    node_ranks = longest_path_ranks({key: node.parents for key, node in nodes.items()})
    for node in nodes.values():
        node.rank = node_ranks[node.key]
    ranks: dict[int, list[Node]] = {}
    for node in sorted(nodes.values(), key=lambda n: (n.kind != "warehouse", n.name)):
        ranks.setdefault(node.rank, []).append(node)
    for layer in ranks.values():
        for i, node in enumerate(layer):
            node.order = i
    children: dict[str, list[Node]] = {}
    for node in nodes.values():
        for p in node.parents:
            children.setdefault(p, []).append(node)
    for _ in range(2):
        for r in sorted(ranks)[1:]:
            _reorder(ranks[r], lambda n: [nodes[p].order for p in n.parents])
        for r in sorted(ranks, reverse=True)[1:]:
            _reorder(ranks[r], lambda n: [c.order for c in children.get(n.key, [])])
    height = 0
    for r, layer in ranks.items():
        for i, node in enumerate(layer):
            node.x = PAD + r * (NODE_W + GAP_X)
            node.y = PAD + i * (NODE_H + GAP_Y)
            height = max(height, node.y + NODE_H + PAD)
    width = PAD * 2 + (max(ranks, default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    edges = [Edge(nodes[p], n) for n in nodes.values() for p in n.parents]
    ordered = sorted(nodes.values(), key=lambda n: (n.rank, n.order))
    return Layout(ordered, edges, width, max(height, NODE_H + 2 * PAD))


def _reorder(layer: list[Node], neighbours) -> None:
    def key(node: Node):
        positions = neighbours(node)
        return (sum(positions) / len(positions)) if positions else node.order

    layer.sort(key=key)
    for i, node in enumerate(layer):
        node.order = i


def pipeline_order(stages: list) -> list:
    """Stages sorted as the pipeline reads, left to right: by rank (longest upstream chain), then
    name. Used wherever Stages are listed, so lists match the graph."""
    rank = longest_path_ranks({s.name: s.upstream_names for s in stages})
    return sorted(stages, key=lambda s: (rank[s.name], s.name))


def longest_path_ranks(parents: dict[str, list[str]]) -> dict[str, int]:
    """Each node's rank: 0 without parents, else 1 + its highest parent's rank. Parents not in
    `parents` are ignored; an edge closing a cycle counts as rank 0 (apply refuses cycles, but
    stored data must never make this loop). Iterative, so deep pipelines cannot hit the
    recursion limit."""
    ranks: dict[str, int] = {}
    for start in parents:
        if start in ranks:
            continue
        stack = [(start, iter(parents[start]))]
        on_path = {start}
        while stack:
            node, pending = stack[-1]
            for parent in pending:
                if parent in parents and parent not in ranks and parent not in on_path:
                    stack.append((parent, iter(parents[parent])))
                    on_path.add(parent)
                    break
            else:
                stack.pop()
                on_path.discard(node)
                known = [ranks.get(p, 0) for p in parents[node] if p in parents]
                ranks[node] = 1 + max(known, default=-1)
    return ranks
