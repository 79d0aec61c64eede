"""An ipywidgets explorer for the two-stage pipeline (notebook 02).

:func:`results_table` does the work and is plain Python (tested); :func:`make_explorer`
wires it to a query box and K / M / threshold sliders.  Without a live kernel front end
(CI, nbval) the widget still builds and renders its first table as text.
"""

from __future__ import annotations


def results_frame(results, qrels: dict | None = None, width: int = 90):
    """A DataFrame of pipeline results (a :class:`~course_lib.pipeline.SearchResult` or its list):
    rank, id, both stages' ranks, p(relevant), the label when ``qrels`` are given, and the text."""
    import pandas as pd

    rows = []
    for r in getattr(results, "results", results):
        row = {
            "rank": r["rank"],
            "id": r["id"],
            "first-stage rank": r["first_stage_rank"],
            "rerank rank": r["rerank_rank"],
            "p(relevant)": round(r["relevance_score"], 3),
        }
        if qrels is not None:
            row["label"] = qrels.get(r["id"], "-")
        row["text"] = r["text"][:width] + ("…" if len(r["text"]) > width else "")
        rows.append(row)
    return pd.DataFrame(rows)


def results_table(pipeline, query: str, k: int = 50, m: int = 5, threshold: float = 0.0, qrels: dict | None = None):
    """Run ``pipeline.search`` and return :func:`results_frame` of the top ``m`` (the pipeline is not changed)."""
    return results_frame(pipeline.search(query, k=k, m=m, score_threshold=threshold), qrels)


def make_explorer(pipeline, default_query: str = "How do vaccines protect against disease?", labelled: dict | None = None):
    """A query box, K / M / threshold sliders and a results table.

    Args:
        pipeline: a :class:`course_lib.pipeline.TwoStageRetriever`.
        labelled: optional ``{query text: qrels}`` to show each result's label for known queries.
    """
    import ipywidgets as w
    from IPython.display import display

    query = w.Text(value=default_query, description="query", layout=w.Layout(width="70%"))
    k = w.IntSlider(value=pipeline.k, min=5, max=100, step=5, description="K (stage 1)")
    m = w.IntSlider(value=pipeline.m, min=1, max=20, description="M (final)")
    thr = w.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="threshold")
    out = w.Output()

    def refresh(*_):
        out.clear_output(wait=True)
        with out:
            if not query.value.strip():
                print("type a query")
                return
            qrels = (labelled or {}).get(query.value)
            table = results_table(pipeline, query.value, k.value, m.value, thr.value, qrels)
            if table.empty:
                print("no result clears the threshold")
            else:
                display(table)

    for ctl in (query, k, m, thr):
        ctl.observe(refresh, names="value")
    refresh()
    return w.VBox([query, w.HBox([k, m, thr]), out])
