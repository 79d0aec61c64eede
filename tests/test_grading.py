from pathlib import Path

import nbformat
import pytest

from course_lib.grading import (
    GradingError,
    build_graded_notebook,
    generate_exercise,
    grade_notebook,
    has_solution,
    strip_solutions,
)

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def test_strip_solutions_keeps_indent_and_hint():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    # HINT: double it\n    return 2 * x\n    ### END SOLUTION\n"
    out = strip_solutions(src)
    assert "return 2 * x" not in out
    assert "    raise NotImplementedError('Exercise: double it')" in out
    assert "    # HINT: double it" in out
    with pytest.raises(GradingError, match="without"):
        strip_solutions("### BEGIN SOLUTION\nx = 1\n")


def test_there_are_exercises():
    assert len(SOLUTIONS) >= 2


@pytest.mark.parametrize("sol", SOLUTIONS, ids=lambda p: p.name)
def test_committed_exercise_matches_generated(sol):
    committed = ROOT / "exercises" / sol.name
    assert committed.is_file(), f"missing {committed}: run `make exercises`"
    expected = generate_exercise(sol)
    got = nbformat.read(str(committed), as_version=4)
    assert [c.source for c in got.cells] == [c.source for c in expected.cells], "exercise drifted: run `make exercises`"
    assert not any(has_solution(c.source) for c in got.cells)


def _completed_copy(sol, tmp_path):
    """The exercise with its stubs filled in by the solution's code (what a learner who solved it has)."""
    ex = nbformat.read(str(ROOT / "exercises" / sol.name), as_version=4)
    ref = nbformat.read(str(sol), as_version=4)
    for c, r in zip(ex.cells, ref.cells):
        if has_solution(r.source):
            c.source = r.source.replace("### BEGIN SOLUTION\n", "").replace("### END SOLUTION\n", "")
        c.outputs = []  # a learner may have cleared outputs: grading must not depend on them
    (tmp_path / "exercises").mkdir(exist_ok=True)
    path = tmp_path / "exercises" / sol.name
    nbformat.write(ex, str(path))
    return path


@pytest.mark.slow  # runs nbval twice per exercise
@pytest.mark.parametrize("sol", SOLUTIONS, ids=lambda p: p.name)
def test_grader_fails_unsolved_and_passes_completed(sol, tmp_path):
    lines = []
    assert grade_notebook(ROOT / "exercises" / sol.name, sol, out=lines.append) == 1
    text = "\n".join(lines)
    assert "[FAIL]" in text and "not implemented yet" in text
    lines = []
    code = grade_notebook(_completed_copy(sol, tmp_path), sol, out=lines.append)
    assert code == 0, "\n".join(lines)
    assert "[FAIL]" not in "\n".join(lines)


@pytest.mark.slow
def test_grader_catches_boost_without_resorting(tmp_path):
    sol = ROOT / "solutions" / "02_custom_domain_reranker.ipynb"
    path = _completed_copy(sol, tmp_path)
    nb = nbformat.read(str(path), as_version=4)
    for c in nb.cells:
        if "boosted.sort(" in c.source:
            c.source = c.source.replace("boosted.sort(", "sorted(")  # computes a sorted copy and drops it
    nbformat.write(nb, str(path))
    lines = []
    assert grade_notebook(path, sol, out=lines.append) == 1
    assert any("[FAIL]" in line for line in lines)


def test_changed_structure_is_reported(tmp_path):
    sol = SOLUTIONS[0]
    nb = nbformat.read(str(ROOT / "exercises" / sol.name), as_version=4)
    nb.cells.pop()
    p = tmp_path / sol.name
    nbformat.write(nb, str(p))
    with pytest.raises(GradingError, match="cells"):
        build_graded_notebook(p, sol)
