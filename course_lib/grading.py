"""Exercises from one source, and their grader.

**One source of truth.**  Each exercise is written once, as a solution notebook in
``solutions/``, with the learner's part between marker lines::

    ### BEGIN SOLUTION
    # HINT: add keyword_matches * domain_boost_factor to each score, then re-sort
    ...the solution...
    ### END SOLUTION

:func:`generate_exercise` replaces every region with a visible ``# YOUR CODE HERE`` marker,
the region's first ``# HINT:`` line (the conceptual hint) and ``raise NotImplementedError(<hint>)``
(indented like the markers).  More specific hints live in collapsed ``<details>`` Markdown cells of
the solution notebook and are kept.  The learner's copy shows the outputs of the cells *before* the
first exercise region (setup, data) and no output from there on: neither the graded checks' outputs
nor anything computed from the solution.

**Checks.**  A cell whose first line starts with ``# CHECK`` is a graded check: its outputs
(ranked ids, rounded scores, ``PASS`` lines) are compared with the solution's by nbval, and its
asserts fail a wrong answer.

**Grading.**  :func:`grade_notebook` takes the learner's code, puts the *solution's* expected
outputs under it (so clearing outputs in JupyterLab cannot make a check pass or fail), runs it
with nbval and prints one line per check and a score; the exit code is 0 only if all pass.

Command line: ``course-lib grade exercises/02_custom_domain_reranker.ipynb``; ``course-lib grade
--all`` prints one line per exercise (passed / failed / not started, with the score);
``python -m course_lib.grading generate solutions exercises`` regenerates all exercises.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
from course_lib.errors import CourseError

BEGIN = re.compile(r"^(\s*)### BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")
HINT = re.compile(r"^\s*#\s*HINT:\s*(.*)$")
_CHECK_PREFIX = "# CHECK"
YOUR_CODE = "# YOUR CODE HERE"


class GradingError(CourseError, RuntimeError):
    """The notebook cannot be graded (missing solution, malformed markers)."""


def strip_solutions(source: str, where: str = "cell") -> str:
    r"""Replace each marked solution region with a stub that raises ``NotImplementedError``.

    >>> print(strip_solutions("def f(x):\n    ### BEGIN SOLUTION\n    # HINT: double it\n    return 2 * x\n    ### END SOLUTION"))
    def f(x):
        # YOUR CODE HERE
        # HINT: double it
        raise NotImplementedError('Exercise: double it')
    """
    out, inside, indent, hint = [], False, "", None
    for line in source.splitlines():
        m = BEGIN.match(line)
        if m and not inside:
            inside, indent, hint = True, m.group(1), None
            out.append(f"{indent}{YOUR_CODE}")
            continue
        if inside and END.match(line):
            msg = "Exercise: " + (hint or "replace this line with your implementation")
            out.append(f"{indent}raise NotImplementedError({msg!r})")
            inside = False
            continue
        if inside:
            h = HINT.match(line)
            if h and hint is None:
                hint = h.group(1).strip()
                out.append(f"{indent}# HINT: {hint}")
            continue
        out.append(line)
    if inside:
        raise GradingError(f"{where}: '### BEGIN SOLUTION' without '### END SOLUTION'")
    return "\n".join(out)


def has_solution(source: str) -> bool:
    return any(BEGIN.match(line) for line in source.splitlines())


def is_check(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith(_CHECK_PREFIX)


def _check_name(cell) -> str:
    first = cell.source.lstrip().splitlines()[0]
    return first[len(_CHECK_PREFIX):].lstrip(": ").strip() or "check"


def generate_exercise(solution_path, exercise_path=None) -> nbformat.NotebookNode:
    """Build the learner's notebook from a solution notebook (and write it if a path is given)."""
    nb = nbformat.read(str(solution_path), as_version=4)
    ex = copy.deepcopy(nb)
    n_regions = 0
    for i, cell in enumerate(ex.cells):
        if cell.cell_type != "code":
            continue
        if has_solution(cell.source):
            cell.source = strip_solutions(cell.source, f"{solution_path} cell {i}")
            n_regions += 1
        if n_regions or is_check(cell):  # from the first exercise region on, and every check: no outputs
            cell.outputs = []
            cell.execution_count = None
    if n_regions == 0:
        raise GradingError(f"{solution_path} has no '### BEGIN SOLUTION' region")
    ex.metadata["course_exercise"] = {"solution": Path(solution_path).name}
    if exercise_path is not None:
        Path(exercise_path).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(ex, str(exercise_path))
    return ex


def generate_all(solutions_dir="solutions", exercises_dir="exercises") -> list[Path]:
    """Regenerate every exercise from ``solutions/NN_*.ipynb``; returns the written paths."""
    written = []
    for sol in sorted(Path(solutions_dir).glob("[0-9][0-9]_*.ipynb")):
        target = Path(exercises_dir) / sol.name
        generate_exercise(sol, target)
        written.append(target)
    return written


def _find_solution(exercise_path) -> Path:
    """The solution notebook for an exercise: ``solutions/<same name>`` beside ``exercises/``."""
    ex = Path(exercise_path).resolve()
    for base in (ex.parent.parent / "solutions", Path.cwd() / "solutions"):
        cand = base / ex.name
        if cand.is_file():
            return cand
    raise GradingError(f"no solution notebook found for {exercise_path} (looked for solutions/{ex.name})")


def build_graded_notebook(learner_path, solution_path) -> nbformat.NotebookNode:
    """Learner's cells, solution's expected outputs: cell by cell, matched by position.

    The learner may edit only inside the stubs; if the cell count differs, the notebook
    structure was changed and the grader says so.
    """
    learner = nbformat.read(str(learner_path), as_version=4)
    solution = nbformat.read(str(solution_path), as_version=4)
    if len(learner.cells) != len(solution.cells):
        raise GradingError(
            f"{learner_path} has {len(learner.cells)} cells but the exercise has {len(solution.cells)}: "
            "add your code inside the existing cells (or regenerate the exercise and copy your code in)"
        )
    graded = copy.deepcopy(learner)
    for cell, ref in zip(graded.cells, solution.cells):
        if cell.cell_type == "code":
            cell.outputs = copy.deepcopy(ref.get("outputs", [])) if not has_solution(ref.source) else []
            # nbval refuses a cell that carries outputs but was never run: the learner's copy has no
            # execution counts from the first exercise cell on, so take the solution's
            cell.execution_count = ref.get("execution_count") or (1 if cell.outputs else None)
            if (not has_solution(ref.source) and not is_check(ref) and cell.source != ref.source) or has_solution(ref.source):
                # the learner's own code, or a non-exercise cell they edited: run it, do not compare its outputs
                _ignore_output(cell)
            if is_check(ref):
                cell.source = ref.source  # checks are the solution's, whatever the learner did to them
    return graded


def _ignore_output(cell) -> None:
    """Tag a cell so that nbval runs it without comparing outputs (a tag in the metadata, not a comment in the code)."""
    tags = cell.metadata.setdefault("tags", [])
    if "nbval-ignore-output" not in tags:
        tags.append("nbval-ignore-output")


def _sanitize_cfg() -> Path | None:
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (base / "nbval_sanitize.cfg").is_file():
            return base / "nbval_sanitize.cfg"
    return None


def _run_nbval(nb_path: Path, timeout: int = 600) -> dict[int, tuple[str, str]]:
    """Run nbval on a notebook; returns ``{cell index in the notebook: (outcome, message)}``.

    nbval numbers *code* cells only ("Cell 2" is the third code cell); this maps them back.
    """
    code_cells = [i for i, c in enumerate(nbformat.read(str(nb_path), as_version=4).cells) if c.cell_type == "code"]
    junit = nb_path.with_suffix(".xml")
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--nbval", "--nbval-current-env",
           f"--nbval-cell-timeout={timeout}", f"--junitxml={junit}"]
    cfg = _sanitize_cfg()
    if cfg:
        cmd.append(f"--nbval-sanitize-with={cfg}")
    cmd.append(str(nb_path))
    subprocess.run(cmd, cwd=str(nb_path.parent), capture_output=True, text=True)
    if not junit.is_file():
        raise GradingError("nbval did not run (is it installed?)")
    results: dict[int, tuple[str, str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        m = re.search(r"Cell (\d+)", case.get("name", ""))
        if not m:
            continue
        idx = code_cells[int(m.group(1))]
        failure = case.find("failure")
        error = case.find("error")
        skipped = case.find("skipped")
        if failure is not None or error is not None:
            node = failure if failure is not None else error
            results[idx] = ("fail", (node.get("message") or "") + "\n" + (node.text or ""))
        elif skipped is not None:
            results[idx] = ("skip", skipped.get("message") or "")
        else:
            results[idx] = ("pass", "")
    return results


_ANSI = re.compile(r"(\x1b|#x1B)\[[0-9;]*m")


def _reason(message: str) -> str:
    """A one-line reason from an nbval failure report."""
    message = _ANSI.sub("", message)
    m = re.search(r"NotImplementedError: (Exercise:[^\n]*)", message)
    if m:
        return f"not implemented yet ({m.group(1).strip()})"
    m = re.search(r"AssertionError: ?([^\n]*)", message)
    if m:
        return "assertion failed" + (f": {m.group(1).strip()}" if m.group(1).strip() else "")
    m = re.search(r"\n(\w+(Error|Exception): [^\n]*)", message)
    if m:
        return m.group(1).strip()
    if "outputs differ" in message or "disagrees" in message or "Unexpected output" in message or "Missing output" in message:
        return "output differs from the solution's"
    return "failed"


def grade_notebook(learner_path, solution_path=None, timeout: int = 600, out=print) -> int:
    """Grade a learner's exercise notebook; prints a line per check and a score; returns the exit code."""
    learner_path = Path(learner_path)
    if not learner_path.is_file():
        out(f"error: {learner_path} not found")
        return 2
    solution_path = Path(solution_path) if solution_path else _find_solution(learner_path)
    graded = build_graded_notebook(learner_path, solution_path)
    ref = nbformat.read(str(solution_path), as_version=4)
    # run next to the learner's notebook so relative paths behave the same
    local = learner_path.resolve().parent / f".grading_{learner_path.stem}.ipynb"
    nbformat.write(graded, str(local))
    try:
        results = _run_nbval(local, timeout)
    finally:
        local.unlink(missing_ok=True)
        local.with_suffix(".xml").unlink(missing_ok=True)
    checks = [(i, _check_name(c)) for i, c in enumerate(ref.cells) if is_check(c)]
    code_cells = [i for i, c in enumerate(ref.cells) if c.cell_type == "code"]
    passed = 0
    out(f"Grading {learner_path.name} against {solution_path.name}")
    first_error = next(((i, results[i][1]) for i in code_cells if results.get(i, ("pass",))[0] == "fail" and not is_check(ref.cells[i])), None)
    if first_error:
        out(f"  note: cell {first_error[0]} failed: {_reason(first_error[1])}")
    for i, name in checks:
        status, msg = results.get(i, ("fail", "not run (an earlier cell failed)"))
        ok = status == "pass"
        passed += ok
        out(f"  [{'PASS' if ok else 'FAIL'}] {name}" + ("" if ok else f" - {_reason(msg)}"))
    others_ok = all(results.get(i, ("fail",))[0] != "fail" for i in code_cells)
    out(f"Score: {passed}/{len(checks)} checks passed")
    return 0 if passed == len(checks) and checks and others_ok else 1


def _is_untouched(learner_path, solution_path) -> bool:
    """True if every exercise cell of the learner's notebook is still the generated stub."""
    learner = nbformat.read(str(learner_path), as_version=4)
    fresh = generate_exercise(solution_path)
    stubs = [c.source for c in fresh.cells if c.cell_type == "code" and YOUR_CODE in c.source]
    mine = [c.source for c in learner.cells if c.cell_type == "code" and YOUR_CODE in c.source]
    return bool(stubs) and mine == stubs


def grade_all(exercises_dir="exercises", solutions_dir=None, timeout: int = 600, out=print) -> int:
    """One line per exercise: ``passed``, ``failed`` or ``not started``, with its score.

    An exercise whose code cells are still the generated stubs is *not started* (and not run);
    every other one is graded with :func:`grade_notebook`.  Returns 0 if all passed.
    """
    exercises = sorted(Path(exercises_dir).glob("[0-9][0-9]_*.ipynb"))
    if not exercises:
        out(f"error: no exercise notebooks (NN_*.ipynb) in {exercises_dir}")
        return 2
    sol_dir = Path(solutions_dir) if solutions_dir else None
    n_passed, width = 0, max(len(p.stem) for p in exercises)
    for ex in exercises:
        try:
            sol = sol_dir / ex.name if sol_dir else _find_solution(ex)
            if not sol.is_file():
                raise GradingError(f"no solution notebook {sol}")
            if _is_untouched(ex, sol):
                out(f"{ex.stem:<{width}}  not started")
                continue
            lines: list[str] = []
            code = grade_notebook(ex, sol, timeout=timeout, out=lines.append)
        except GradingError as exc:
            out(f"{ex.stem:<{width}}  error: {exc}")
            continue
        score = next((ln.split(": ", 1)[1].split()[0] for ln in lines if ln.startswith("Score:")), "?")
        fails = [ln.strip() for ln in lines if ln.strip().startswith("[FAIL]")]
        n_passed += code == 0
        out(f"{ex.stem:<{width}}  {'passed' if code == 0 else 'failed'}  {score}"
            + (f"  first failure: {fails[0][7:]}" if fails else ""))
    out(f"{n_passed}/{len(exercises)} exercises passed")
    return 0 if n_passed == len(exercises) else 1


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 3 and argv[0] == "generate":
        for p in generate_all(argv[1], argv[2]):
            print(f"wrote {p}")
        return 0
    print("usage: python -m course_lib.grading generate SOLUTIONS_DIR EXERCISES_DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
