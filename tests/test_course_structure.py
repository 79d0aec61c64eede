"""The course's promised structure, checked on every notebook (cheap: reads the JSON, runs nothing)."""
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MD_LINK = re.compile(r"\]\(([^)#]+)(#[^)]*)?\)")


def test_notebooks_00_to_07_exist():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(8)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_starts_with_what_you_will_learn_and_ends_with_a_markdown_recap(path):
    nb = nbformat.read(str(path), as_version=4)
    assert nb.cells[0].cell_type == "markdown" and "what you will learn" in nb.cells[0].source.lower()
    tail = [c for c in nb.cells if c.cell_type == "markdown"][-1].source
    assert nb.cells[-1].cell_type == "markdown", "the notebook ends in Markdown (recap, exercise, next)"
    assert "## Recap" in tail
    number = int(path.name[:2])
    if number > 0:  # exercise N belongs to notebook N, linked, with the grading command
        ex = next((ROOT / "exercises").glob(f"{number:02d}_*.ipynb"))
        assert f"](../exercises/{ex.name})" in tail and f"course-lib grade exercises/{ex.name}" in tail
    if number < len(NOTEBOOKS) - 1:
        nxt = NOTEBOOKS[number + 1].name
        assert f"]({nxt})" in tail, f"link to the next notebook, {nxt}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_relative_links_resolve(path):
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for target, anchor in MD_LINK.findall(cell.source):
            if target.startswith(("http://", "https://")):
                continue
            assert (path.parent / target).exists(), f"{path.name}: broken link {target}"
            if anchor and target.endswith(".ipynb"):
                linked = nbformat.read(str(path.parent / target), as_version=4)
                assert any(f'id="{anchor[1:]}"' in c.source for c in linked.cells), f"{path.name}: no anchor {target}{anchor}"


def test_glossary_defines_the_measures_the_course_reports():
    nb = nbformat.read(str(ROOT / "notebooks" / "00_start_here.ipynb"), as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for anchor in ("glossary", "precision", "recall", "mrr", "map", "ndcg", "ece", "fusion", "bootstrap"):
        assert f'<a id="{anchor}"></a>' in text


ALL_NOTEBOOKS = NOTEBOOKS + sorted((ROOT / "solutions").glob("*.ipynb")) + sorted((ROOT / "exercises").glob("*.ipynb"))


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_test_markers_are_cell_tags_and_outputs_hold_no_machine_paths(path):
    """nbval's markers live in cell metadata (out of the learner's sight), and no stored output shows where it ran."""
    nb = nbformat.read(str(path), as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert "NBVAL_" not in cell.source, f"cell {i}: use the cell tag (e.g. nbval-ignore-output), not a comment"
        text = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in cell.get("outputs", []))
        for machine_path in (str(ROOT), str(Path.home()), "/work/", "/home/"):
            assert machine_path not in text, f"cell {i}: an output shows a path of the machine that ran it ({machine_path})"
