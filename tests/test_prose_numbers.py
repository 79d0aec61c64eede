"""The notebooks' prose quotes no number without a source (see tests/prose_numbers.py for the rules)."""
from pathlib import Path

import pytest
from prose_numbers import _SECTION, ALLOWED, ROOT, matches, unsourced

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_number_in_the_prose_has_a_source(notebook: Path):
    checked, missing = unsourced(notebook)
    assert not missing, (
        f"{notebook.name}: {len(missing)} of {checked} numbers in the prose appear in no output of the notebook and "
        "name no source (a record under eval_cache/, the model card, another notebook) — fix the prose, print the "
        "number, or name its source:\n" + "\n".join(f"  {n}: {p}" for n, p in missing))


def test_the_rules_find_a_number_without_a_source(tmp_path):
    import json

    nb = {"cells": [{"cell_type": "markdown", "source": ["NDCG rose to 0.412 (was 0.401); see section 2.3.\n\n",
                                                          "From the model card: 123.45."]},
                    {"cell_type": "code", "source": [], "outputs": [{"output_type": "stream", "name": "stdout",
                                                                      "text": ["ndcg 0.4118\n"]}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "99_demo.ipynb"
    path.write_text(json.dumps(nb))
    checked, missing = unsourced(path)
    assert checked == 3  # 0.412, 0.401, 123.45; the section number is not a claim
    assert [n for n, _ in missing] == ["0.401", "123.45"]  # 0.412 is 0.4118 rounded; the card does not hold 123.45


def test_rounding_and_sign_rules():
    assert matches("0.36", 0.36, [0.3594]) and not matches("0.36", 0.36, [0.3651])
    assert matches("0.025", 0.025, [-0.025])       # "lower by 0.025"
    assert matches("19,263", 19263, [19263.0])
    assert _SECTION.search("see section ") and _SECTION.search("§") and not _SECTION.search("on dev ")  # "dev" is no "v"
    assert all(reason.strip() for allowed in ALLOWED.values() for reason in allowed.values())
