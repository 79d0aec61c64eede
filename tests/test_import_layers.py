"""The package's import layers, checked on the source (nothing is imported): the module map holds.

* no import cycles among ``course_lib`` modules (imports inside functions count: they run too);
* the bottom layer (``env``, ``metrics``, ``data``, ``calibration``, ``fusion``, ``losses`` and the
  runtime model's architecture, ``course_reranker.modeling``) imports no other course module but ``env``;
* no learner module imports the instructor's code (``course_reranker.recipe``, ``.selection``,
  ``.distill``): only the instructor modules themselves and the command line (``cli``) may.

``python tests/test_import_layers.py`` prints every arrow of the graph.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "course_lib"
BOTTOM = {"env", "metrics", "data", "calibration", "fusion", "losses", "course_reranker.modeling"}
INSTRUCTOR = {"course_reranker.recipe", "course_reranker.selection", "course_reranker.distill"}
MAY_IMPORT_INSTRUCTOR = INSTRUCTOR | {"cli"}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: modules it imports}``, names relative to the package ("" is the package itself)."""
    mods = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    root = package.name
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            for t in targets:
                if t != root and not t.startswith(root + "."):
                    continue
                rel = t[len(root) + 1:] if t != root else ""
                while rel not in mods and "." in rel:
                    rel = rel.rsplit(".", 1)[0]
                if rel in mods and rel != name:
                    graph[name].add(rel)
                    break  # "from course_lib.x import y": y a module, else x
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every broken rule of the module map, as a sentence."""
    found = [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    for m in sorted(BOTTOM & set(graph)):
        found += [f"bottom-layer {m} imports {t}" for t in sorted(graph[m] - {"env"})]
    for m in sorted(set(graph) - MAY_IMPORT_INSTRUCTOR):
        found += [f"learner module {m or 'course_lib'} imports instructor code {t}" for t in sorted(graph[m] & INSTRUCTOR)]
    return found


def test_the_package_keeps_its_import_layers():
    graph = import_graph()
    assert len(graph) > 30 and sum(map(len, graph.values())) > 80  # the graph was really read
    assert violations(graph) == []


def test_the_contract_catches_a_cycle_a_low_layer_import_and_a_learner_importing_instructor_code():
    graph = {m: set(v) for m, v in import_graph().items()}
    graph["caches"].add("runs")                        # runs -> rerank ... and now caches -> runs -> caches
    graph["runs"].add("caches")
    graph["metrics"].add("rerank")                     # the bottom layer reaching up
    graph["rerank"].add("course_reranker.distill")     # learner code importing the instructor's tools
    found = violations(graph)
    assert any(v.startswith("import cycle") and "caches" in v for v in found)
    assert "bottom-layer metrics imports rerank" in found
    assert "learner module rerank imports instructor code course_reranker.distill" in found


if __name__ == "__main__":
    for module, targets in sorted(import_graph().items()):
        print(f"{module or 'course_lib'} -> {', '.join(sorted(targets)) or '(nothing)'}")
