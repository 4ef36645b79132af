"""The task DAG: cycle detection, a stable topological order, upstream queries."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping, Sequence
from graphlib import CycleError, TopologicalSorter  # graphlib-backport below Python 3.9

Graph = Mapping[str, Sequence[str]]  # node -> the nodes it needs


def find_cycle(graph: Graph) -> list[str] | None:
    """A dependency cycle as ``[a, b, a]`` (first node repeated), or None."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        cycle = list(exc.args[1])
        # graphlib lists the cycle against the edge direction; show it as "a needs b".
        return list(reversed(cycle))
    return None


def stable_order(graph: Graph, rank: Mapping[str, int]) -> list[str]:
    """Topological order that keeps declaration order (``rank``) wherever it can."""
    dependents: dict[str, list[str]] = {n: [] for n in graph}
    waiting = {n: len(needs) for n, needs in graph.items()}
    for node, needs in graph.items():
        for need in needs:
            dependents[need].append(node)
    ready = [(rank[n], n) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(node)
        for child in dependents[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (rank[child], child))
    return order


def is_upstream(graph: Graph, node: str, candidate: str) -> bool:
    """True when ``node`` waits for ``candidate`` directly or transitively."""
    needs = graph.get(node, ())
    if candidate in needs:
        return True
    seen = set(needs)
    queue = deque(needs)
    while queue:
        current = queue.popleft()
        if current == candidate:
            return True
        for parent in graph.get(current, ()):
            if parent not in seen:
                seen.add(parent)
                queue.append(parent)
    return False


def edges(graph: Graph, order: Sequence[str]) -> list[tuple[str, str]]:
    """``(upstream, downstream)`` pairs in plan order."""
    return [(need, node) for node in order for need in graph.get(node, ())]
