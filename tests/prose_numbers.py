"""Every number the notebooks' prose quotes has a source the tests can check.

A decimal number in a Markdown cell (``0.359``, ``−0.025``, ``4.6×``, ``19,263``) passes when

1. an output of the same notebook prints it (a rounded form counts: prose ``0.36`` matches ``0.3594``;
   the sign may be left to the words: "lower by 0.02" matches ``-0.020``), or
2. its paragraph names where it comes from, and that source holds it: a record under ``eval_cache/``
   (``eval_cache/bench/course-k30.json``), the model card (a link to ``assets/README.md`` or the words
   "model card"), or another notebook (a link to ``06_evaluation.ipynb`` or the words "notebook 06"), or
3. it is on :data:`ALLOWED` (constants the text defines, versions, section numbers), with a reason.

Numbers in inline code (```k1=0.9```) are code, not claims, and are not checked; neither are section
references ("section 2.3").
"""
from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL_CARD = ROOT / "course_lib" / "course_reranker" / "assets" / "README.md"

_NUM = re.compile(r"(?<![\w.])([−+-]?)(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d*\.\d+)(?![\w])")
_OUT_NUM = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")
_SECTION = re.compile(r"(?:\b(?:section|sections|part|step|stage|python|torch|version|v)|§)\s*$", re.I)

# Numbers the prose may quote without an output, each with its reason.  Keep it short.
ALLOWED: dict[str, dict[str, str]] = {
    "00": {
        "1.262": "glossary: NDCG worked example, arithmetic shown in the sentence",
        "0.431": "glossary: NDCG worked example, arithmetic shown in the sentence",
        "1.693": "glossary: NDCG worked example, arithmetic shown in the sentence",
        "2.631": "glossary: NDCG worked example, arithmetic shown in the sentence",
        "0.2": "glossary: ECE worked example, the share of pairs in a bin (2 of 10)",
        "0.25": "glossary: ECE worked example, a bin's gap (0.75 - 0.5)",
        "2,000": "glossary: the number of bootstrap resamples, a constant of the method",
    },
    "03": {
        "1.79": "ln 6, the loss of a model that cannot tell six candidates apart",
    },
}


def _numbers_in_text(text: str) -> list[float]:
    out = []
    for m in _OUT_NUM.finditer(text):
        s = m.group(0)
        if not s or s in {"-", ".", "-."} or not any(ch.isdigit() for ch in s):
            continue
        try:
            out.append(float(s.replace(",", "")))
        except ValueError:
            pass
    return out


def _output_text(cell: dict) -> str:
    parts = []
    for o in cell.get("outputs", []):
        if "text" in o:
            parts.append("".join(o["text"]))
        for kind, value in o.get("data", {}).items():
            if kind in ("text/plain", "text/markdown"):
                parts.append("".join(value))
            elif kind == "text/html":
                parts.append(html.unescape(re.sub(r"<[^>]+>", " ", "".join(value))))
    return "\n".join(parts)


@lru_cache(maxsize=None)
def notebook_numbers(path: Path) -> tuple[float, ...]:
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    text = "\n".join(_output_text(c) for c in nb["cells"] if c["cell_type"] == "code")
    return tuple(_numbers_in_text(text))


@lru_cache(maxsize=None)
def file_numbers(path: Path) -> tuple[float, ...]:
    text = Path(path).read_text(encoding="utf-8")
    if path.suffix == ".json":
        vals = []

        def walk(x):
            if isinstance(x, bool):
                return
            if isinstance(x, (int, float)):
                vals.append(float(x))
            elif isinstance(x, dict):
                for k, v in x.items():
                    vals.extend(_numbers_in_text(str(k)))
                    walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)
            elif isinstance(x, str):
                vals.extend(_numbers_in_text(x))

        walk(json.loads(text))
        return tuple(vals)
    return tuple(_numbers_in_text(text))


def matches(quoted: str, value: float, candidates) -> bool:
    """Whether ``value`` (quoted with ``quoted``'s decimals) is a rounded form of a candidate, sign optional."""
    decimals = len(quoted.split(".", 1)[1]) if "." in quoted else 0
    for c in candidates:
        for v in (c, -c, 100 * c, -100 * c):  # "94%" of a 0.94, a sign carried by the words
            if abs(round(v, decimals) - value) < 10 ** (-decimals) * 0.01 or abs(v - value) < 1e-12:
                return True
    return False


def _strip_code(md: str) -> str:
    md = re.sub(r"```.*?```", " ", md, flags=re.S)
    md = re.sub(r"`[^`]*`", " ", md)
    return re.sub(r"\$[^$]*\$", " ", md)


def sources(paragraph: str, notebook: Path) -> list[Path]:
    """The sources a paragraph names (records, the model card, other notebooks)."""
    found = []
    for m in re.finditer(r"eval_cache/[\w./-]+\.json", paragraph):
        p = ROOT / m.group(0)
        if p.is_file():
            found.append(p)
    if "model card" in paragraph.lower() or "assets/README.md" in paragraph:
        found.append(MODEL_CARD)
    for m in re.finditer(r"(\d\d)_[\w]+\.ipynb", paragraph):
        found.extend(p for p in ROOT.joinpath("notebooks").glob(f"{m.group(1)}_*.ipynb"))
    for m in re.finditer(r"notebooks? (\d\d)\b", paragraph):
        found.extend(ROOT.joinpath("notebooks").glob(f"{m.group(1)}_*.ipynb"))
    return [p for p in dict.fromkeys(found) if p != notebook]


def unsourced(notebook: Path) -> tuple[int, list[tuple[str, str]]]:
    """``(numbers checked, [(number, its paragraph)] without a source)`` for one notebook."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    own = notebook_numbers(notebook)
    allowed = ALLOWED.get(notebook.stem[:2], {})
    checked, missing = 0, []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text = "\n".join(ln for ln in "".join(cell["source"]).splitlines() if not ln.lstrip().startswith("#"))
        for paragraph in re.split(r"\n\s*\n", _strip_code(text)):  # headings ("### 2.1 ...") are not claims
            for m in _NUM.finditer(paragraph):
                sign, digits = m.groups()
                before = paragraph[: m.start()]
                if _SECTION.search(before[-12:]):
                    continue  # "section 2.3", "stage 6", "Python 3.11"
                checked += 1
                value = float(digits.replace(",", "")) * (-1 if sign in "−-" and sign else 1)
                if digits in allowed or (sign + digits) in allowed:
                    continue
                if matches(digits, value, own):
                    continue
                if any(matches(digits, value, file_numbers(p) if p.suffix != ".ipynb" else notebook_numbers(p))
                       for p in sources(paragraph, notebook)):
                    continue
                missing.append((sign + digits, " ".join(paragraph.split())[:160]))
    return checked, missing
