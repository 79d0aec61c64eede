from pathlib import Path

import nbformat
import pytest

from course_lib.grading import (
    YOUR_CODE,
    GradingError,
    build_graded_notebook,
    generate_exercise,
    grade_all,
    grade_notebook,
    has_solution,
    is_check,
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
    assert out.index("    # YOUR CODE HERE") < out.index("    # HINT") < out.index("    raise")
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


@pytest.mark.parametrize("sol", SOLUTIONS, ids=lambda p: p.name)
def test_exercise_shows_no_check_outputs_and_marks_the_place_to_write(sol):
    ex = generate_exercise(sol)
    code = [c for c in ex.cells if c.cell_type == "code"]
    stubs = [c for c in code if YOUR_CODE in c.source]
    assert stubs and all("raise NotImplementedError" in c.source for c in stubs)
    assert any(is_check(c) for c in code)
    assert all(not c.outputs for c in code if is_check(c))
    first = next(i for i, c in enumerate(code) if YOUR_CODE in c.source)
    assert all(not c.outputs for c in code[first:]), "outputs after the first exercise region give answers away"
    ref = nbformat.read(str(sol), as_version=4)
    assert any(c.outputs for c in ref.cells if is_check(c)), "the solution keeps the outputs the grader compares"


def test_grade_all_reports_each_exercise(tmp_path, monkeypatch):
    ex_dir = tmp_path / "exercises"
    ex_dir.mkdir()
    a, b = SOLUTIONS[0], SOLUTIONS[1]
    generate_exercise(a, ex_dir / a.name)  # untouched: not started, never run
    nb = generate_exercise(b)
    for c in nb.cells:
        if YOUR_CODE in c.source:
            c.source = c.source.replace(YOUR_CODE, YOUR_CODE + "\nx = 1")
    nbformat.write(nb, str(ex_dir / b.name))
    (ex_dir / "99_orphan.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    ran = []

    def fake_grade(path, sol, timeout=600, out=print):
        ran.append(Path(path).name)
        out("  [PASS] one")
        out("  [FAIL] two - assertion failed: NDCG@3 too low")
        out("Score: 1/2 checks passed")
        return 1

    monkeypatch.setattr("course_lib.grading.grade_notebook", fake_grade)
    lines = []
    code = grade_all(ex_dir, ROOT / "solutions", out=lines.append)
    assert code == 1 and ran == [b.name]
    assert lines[0].startswith(a.stem) and lines[0].endswith("not started")
    assert lines[1].startswith(b.stem) and "failed  1/2" in lines[1] and "NDCG@3 too low" in lines[1]
    assert lines[2].startswith("99_orphan") and "error" in lines[2]
    assert lines[-1] == "0/3 exercises passed"
    assert grade_all(tmp_path / "nowhere", out=lines.append) == 2


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
