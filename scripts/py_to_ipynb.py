"""Convert a percent-format script (``# %%`` / ``# %% [markdown]`` cells) to a notebook.

Authoring aid: ``python scripts/py_to_ipynb.py draft.py notebooks/NN_name.ipynb``.
The notebook is the source of truth once written; edit it in JupyterLab afterwards.
"""
import sys

import nbformat


def convert(src: str):
    cells, kind, buf = [], None, []

    def flush():
        if kind is None:
            return
        text = "\n".join(buf).strip("\n")
        if kind == "md":
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in text.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(text))
        elif text.strip():
            cells.append(nbformat.v4.new_code_cell(text))

    for line in src.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, buf = ("md" if "[markdown]" in line else "code"), []
        else:
            buf.append(line)
    flush()
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    nbformat.write(convert(open(sys.argv[1]).read()), sys.argv[2])
