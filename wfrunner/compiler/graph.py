"""Graph algorithms over node ids, iterative so 10,000-node workflows need no deep stack."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping


def strongly_connected(nodes: Iterable[str], succ: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's SCCs that form cycles (size > 1, or a self-loop), in discovery order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(succ.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            nxt = next(pending, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(succ.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = _pop_component(stack, on_stack, node)
                if len(component) > 1 or node in succ.get(node, ()):
                    cycles.append(component)
    return cycles


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> list[str]:
    component: list[str] = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == root:
            return component[::-1]


def cycle_path(component: list[str], succ: Mapping[str, Iterable[str]]) -> list[str]:
    """One concrete cycle inside a strongly connected component, first node repeated."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in succ.get(node, ()):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*path[::-1], start]
                if nxt in members and nxt not in parents:
                    parents[nxt] = node
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    return [start, start]


def topological_order(nodes: Iterable[str], succ: Mapping[str, Iterable[str]]) -> list[str]:
    """Kahn's order of an acyclic graph (nodes on a cycle are left out)."""
    indegree = dict.fromkeys(nodes, 0)
    for node in indegree:
        for nxt in succ.get(node, ()):
            indegree[nxt] += 1
    order = [node for node, degree in indegree.items() if degree == 0]
    for node in order:  # grows while it is read
        for nxt in succ.get(node, ()):
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                order.append(nxt)
    return order


def reachable(start: str, succ: Mapping[str, Iterable[str]]) -> set[str]:
    """Nodes reachable from ``start`` (excluding it unless on a cycle)."""
    seen: set[str] = set()
    todo = list(succ.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(succ.get(node, ()))
    return seen
