"""The package's import layers, checked on the source (nothing is imported): the module map holds.

Every module sits on one layer (:data:`LAYERS`, bottom first) and imports only from its own layer
or below; besides,

* no import cycles among ``course_lib`` modules (imports inside functions count: they run too);
* no learner module imports the instructor's code (``course_lib.instructor``): only the instructor
  modules themselves may;
* the storage layer (``caches``, ``dense``) imports no scorer (it sits below them);
* a module the map does not place is an error (a new module takes a place on purpose).

``python tests/test_import_layers.py`` prints every arrow of the graph, layer by layer.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "course_lib"
#: Bottom first.  A module is placed by its full name, else by its package's name ("scorers" places
#: every scorers.* module); "" is the package itself.
LAYERS = [
    ("foundation", {"", "env", "settings", "errors"}),
    ("bottom", {"metrics", "data", "calibration", "fusion", "losses", "plots", "grading", "notebook", "widgets",
                "course_reranker", "course_reranker.modeling"}),
    ("models and storage", {"models", "caches", "dense"}),
    ("scorers", {"scorers"}),
    ("rankers and first stage", {"rerank", "retrieval", "pipeline", "runs", "theory", "training", "integrations"}),
    ("applications", {"evaluation", "optimize", "domains", "bench", "service"}),
    ("entry points", {"cli", "instructor"}),
]
INSTRUCTOR = "instructor"
STORAGE = {"caches", "dense"}


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of ``module`` (by full name, else by its longest placed package)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        for i, (_, members) in enumerate(LAYERS):
            if name in members:
                return i
    if module == "":
        return 0
    raise KeyError(module)


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
    for m in sorted(graph):
        try:
            here = layer_of(m)
        except KeyError:
            found.append(f"module {m} has no place in LAYERS")
            continue
        for t in sorted(graph[m]):
            try:
                there = layer_of(t)
            except KeyError:
                continue  # reported as its own module
            if there > here:
                found.append(f"{m} ({LAYERS[here][0]}) imports {t} from a higher layer ({LAYERS[there][0]})")
            if t.split(".")[0] == INSTRUCTOR and m.split(".")[0] != INSTRUCTOR:
                found.append(f"learner module {m or 'course_lib'} imports instructor code {t}")
            if m in STORAGE and t.split(".")[0] == "scorers":
                found.append(f"storage module {m} imports scorer module {t}")
    return found


def test_the_package_keeps_its_import_layers():
    graph = import_graph()
    assert len(graph) > 30 and sum(map(len, graph.values())) > 80  # the graph was really read
    assert violations(graph) == []


def test_the_contract_catches_a_cycle_a_higher_layer_an_instructor_import_and_storage_importing_scorers():
    graph = {m: set(v) for m, v in import_graph().items()}
    graph["caches"].add("scorers.cached")              # scorers.cached -> caches, and now back: a cycle
    graph["metrics"].add("rerank")                     # the bottom layer reaching up
    graph["cli"].add("instructor.distill")             # learner code importing the instructor's tools
    graph["new_module"] = set()                        # a module the map does not place
    found = violations(graph)
    assert any(v.startswith("import cycle") and "caches" in v and "scorers.cached" in v for v in found)
    assert "metrics (bottom) imports rerank from a higher layer (rankers and first stage)" in found
    assert "learner module cli imports instructor code instructor.distill" in found
    assert "storage module caches imports scorer module scorers.cached" in found
    assert "module new_module has no place in LAYERS" in found


def test_every_layer_names_modules_that_exist():
    graph = import_graph()
    placed = {name for _, members in LAYERS for name in members}
    prefixes = {m.split(".")[0] for m in graph} | set(graph)
    assert placed <= prefixes, sorted(placed - prefixes)


TESTS = Path(__file__).resolve().parent
#: Test modules that check the repository as a whole rather than one module.
REPOSITORY_CHECKS = {"test_course_structure.py", "test_deploy.py", "test_eval_cache.py", "test_import_layers.py",
                     "test_prose_numbers.py"}


def expected_test(module: str) -> Path:
    """Where ``course_lib/a/b.py``'s tests live: ``tests/a/test_b.py`` (``__main__``: ``test_main.py``;
    the package itself: ``tests/test_course_lib.py``)."""
    if module == "":
        return TESTS / "test_course_lib.py"
    *folders, name = module.split(".")
    return TESTS.joinpath(*folders, f"test_{name.strip('_')}.py")


def test_tests_mirror_the_package_tree():
    """One test module per module, in the same folders; no test module without its module."""
    graph = import_graph()
    modules = [m for m in graph if not (PACKAGE / m.replace(".", "/") / "__init__.py").is_file() or m == ""]
    missing = sorted(str(expected_test(m).relative_to(TESTS)) for m in modules if not expected_test(m).is_file())
    assert missing == [], f"modules without their test module: {missing}"
    expected = {expected_test(m) for m in modules}
    strays = sorted(str(p.relative_to(TESTS)) for p in TESTS.rglob("test_*.py")
                    if p not in expected and p.name not in REPOSITORY_CHECKS)
    assert strays == [], f"test modules that mirror no module: {strays}"


if __name__ == "__main__":
    graph = import_graph()
    for i, (name, _) in enumerate(LAYERS):
        print(f"## layer {i}: {name}")
        for module in sorted(m for m in graph if layer_of(m) == i):
            print(f"{module or 'course_lib'} -> {', '.join(sorted(t or 'course_lib' for t in graph[module])) or '(nothing)'}")
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} arrows, {len(cycles(graph))} cycles, "
          f"{len(violations(graph))} violations")
