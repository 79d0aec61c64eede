"""Plots used across the notebooks (matplotlib; each returns the Figure)."""

from __future__ import annotations

import numpy as np


def _fig(figsize=(6, 4)):
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)


def _finish(fig, ax, xlabel=None, ylabel=None, title=None, legend_size=None):
    """Labels, title, an optional legend, a tight layout; returns the figure."""
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend_size:
        ax.legend(fontsize=legend_size)
    fig.tight_layout()
    return fig


def attention_heatmap(q_tokens, d_tokens, matrix, title="cross-attention (query -> document)"):
    fig, ax = _fig((max(6, 0.35 * len(d_tokens)), max(2.5, 0.4 * len(q_tokens))))
    im = ax.imshow(matrix, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(d_tokens)), d_tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(q_tokens)), q_tokens, fontsize=8)
    ax.set_xlabel("document tokens (## marks a word piece)")
    ax.set_ylabel("query tokens")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.03).set_label("attention weight")
    fig.tight_layout()
    return fig


def reliability_diagram(curves: dict, n_bins: int = 10, title="calibration: predicted vs observed"):
    """``curves``: name -> (probabilities, labels). Perfect calibration is the diagonal."""
    from course_lib.calibration import expected_calibration_error, reliability_table

    fig, ax = _fig((5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for name, (p, y) in curves.items():
        rows = reliability_table(p, y, n_bins)
        ece = expected_calibration_error(p, y, n_bins)
        ax.plot([r[3] for r in rows], [r[4] for r in rows], "o-", label=f"{name} (ECE {ece:.3f})")
        for r in rows:  # how many pairs each point stands for: a point from 2 pairs is not a rate
            ax.annotate(str(r[2]), (r[3], r[4]), textcoords="offset points", xytext=(4, -10), fontsize=7, alpha=0.8)
    return _finish(fig, ax, "predicted probability of relevance", "observed share relevant", title, legend_size=8)


def logit_histogram(logits, labels, title="cross-encoder logits by label"):
    fig, ax = _fig()
    logits, labels = np.asarray(logits), np.asarray(labels) > 0
    bins = np.linspace(logits.min(), logits.max(), 30)
    ax.hist(logits[~labels], bins=bins, alpha=0.6, label="not relevant", density=True)
    ax.hist(logits[labels], bins=bins, alpha=0.6, label="relevant (grade 1 or 2)", density=True)
    ax.set_xlabel("logit")
    ax.set_ylabel("density (each histogram sums to 1)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def metric_vs_k(table, x="k", title="first-stage recall ceiling vs K", ylabel="score (recall or NDCG@10)", log=None):
    """Line plot of every numeric column of a DataFrame against ``x``.

    ``log=None`` picks the axis: a log scale with a tick at each value when every ``x`` is a positive
    whole number (Ks), else a linear axis (a fusion weight from 0 to 1, say) with its values as labels.
    """
    fig, ax = _fig()
    for col in table.columns:
        if col != x:
            ax.plot(table[x], table[col], "o-", label=col)
    xs = [float(v) for v in table[x]]
    if log is None:
        log = all(v > 0 and v == int(v) for v in xs)
    if log:
        ax.set_xscale("log")
        ax.set_xticks(xs, [str(int(v)) for v in xs])
        ax.minorticks_off()
        ax.set_xlabel(f"{x} (log scale)")
    else:
        step = -(-len(xs) // 11)  # at most 11 labels
        ax.set_xticks(xs[::step], [f"{v:g}" for v in xs[::step]])
        ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def gain_histogram(gains, xlabel: str = "per-query NDCG@10 difference"):
    """Histogram of per-query differences between two systems: where one helps and where it hurts."""
    d = np.asarray(gains, dtype=np.float64)
    fig, ax = _fig((6, 3.5))
    ax.hist(d, bins=31, color="#66c2a5")
    ax.axvline(0, color="k", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("queries")
    ax.set_title(f"{(d > 0).sum()} better, {(d < 0).sum()} worse, {(d == 0).sum()} tied")
    fig.tight_layout()
    return fig


def latency_vs_quality(rows, x: str = "seconds per query", y: str = "fused ndcg@10", label: str = "K",
                       title: str = "latency vs quality"):
    """Scatter-line of quality against latency, each point labelled (e.g. ``K=30``)."""
    fig, ax = _fig((5, 3.5))
    xs = [r[x] for r in rows]
    ys = [r[y] for r in rows]
    ax.plot(xs, ys, "o-")
    for r in rows:
        ax.annotate(f"{label}={int(r[label]) if float(r[label]).is_integer() else r[label]}", (r[x], r[y]),
                    textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel(f"rerank {x} (this CPU)")
    ax.set_ylabel(y)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def latency_distributions(latencies: dict, title: str = "request latency under load", deadline_ms: float | None = None):
    """Overlaid histograms (log-spaced bins) of several runs' per-request latencies in ms, with
    each run's p50 and p95 in the legend."""
    fig, ax = _fig((6.5, 3.8))
    all_ms = np.concatenate([np.asarray(v, dtype=float) for v in latencies.values() if len(v)]) if latencies else np.ones(1)
    lo, hi = max(0.1, float(all_ms.min())), float(all_ms.max())
    bins = np.geomspace(lo, hi * 1.01 if hi > lo else lo * 2, 30)
    for name, v in latencies.items():
        v = np.asarray(v, dtype=float)
        if not len(v):
            continue
        ax.hist(v, bins=bins, alpha=0.55, label=f"{name} (p50 {np.percentile(v, 50):.0f} ms, p95 {np.percentile(v, 95):.0f} ms)")
    if deadline_ms is not None:
        ax.axvline(deadline_ms, color="k", ls="--", lw=1, label=f"deadline {deadline_ms:.0f} ms")
    ax.set_xscale("log")
    return _finish(fig, ax, "latency per request (ms, log scale)", "requests", title, legend_size=8)


def effect_bars(rows, title: str = "effect on NDCG@10 (95% paired-bootstrap interval)", xlabel: str = "NDCG@10 difference"):
    """Horizontal bars of differences with their intervals: ``rows`` of ``{"name", "diff", "low", "high"}``.

    Bars whose interval excludes zero are drawn solid, the rest hatched: a learner sees at a
    glance which effects the data can tell apart from noise.
    """
    rows = list(rows)
    fig, ax = _fig((7, 0.45 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows):
        sure = r["low"] > 0 or r["high"] < 0
        color = "#66c2a5" if r["diff"] >= 0 else "#fc8d62"
        ax.barh(yi, r["diff"], color=color, hatch=None if sure else "//", edgecolor="k" if not sure else color)
        ax.plot([r["low"], r["high"]], [yi, yi], color="k", lw=1.2)
    ax.axvline(0, color="k", lw=1)
    ax.set_yticks(y, [r["name"] for r in rows], fontsize=9)
    return _finish(fig, ax, xlabel=xlabel, title=title)


def group_gains(groups: dict, title: str = "", ylabel: str = "mean NDCG@10 gain"):
    """Bars of mean per-query gains by group (``{group: [gains]}``), each labelled with its count."""
    names = list(groups)
    means = [float(np.mean(groups[n])) if len(groups[n]) else 0.0 for n in names]
    fig, ax = _fig((max(6, 1.1 * len(names)), 3.8))
    ax.bar(range(len(names)), means, color=["#66c2a5" if m >= 0 else "#fc8d62" for m in means])
    for i, n in enumerate(names):
        ax.text(i, means[i], f"n={len(groups[n])}", ha="center", va="bottom" if means[i] >= 0 else "top", fontsize=8)
    ax.axhline(0, color="k", lw=1)
    ax.margins(y=0.18)  # room for the count labels above (or below) the tallest bars
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=9)
    return _finish(fig, ax, ylabel=ylabel, title=title)


def abstention_curve(thresholds, answered, precision, marks: dict | None = None,
                     title: str = "answering less, more precisely"):
    """Share of questions answered and precision@1 of the answered ones, as the threshold rises.

    ``marks``: ``{label: threshold}`` drawn as vertical lines (e.g. thresholds chosen on tuning data).
    """
    fig, ax = _fig((6.5, 3.8))
    ax.plot(thresholds, answered, label="share of questions answered", color="#8da0cb")
    ax.plot(thresholds, precision, label="precision@1 when answering", color="#fc8d62")
    for i, (label, t) in enumerate((marks or {}).items()):
        ax.axvline(t, color="k", ls="--", lw=1)
        ax.text(t, 0.95 - 0.08 * i, f" {label}", fontsize=8, ha="right" if t > 0.5 else "left")
    ax.set_ylim(0, 1.02)
    return _finish(fig, ax, xlabel="probability threshold", title=title, legend_size=8)


def pareto(rows, x: str = "speedup", y: str = "ndcg@10", label: str = "name", title: str = "speed vs quality",
           baseline: float | None = None):
    """Each variant as a numbered point (speed-up vs NDCG@10) with a key beside the axes; the Pareto front
    (no other point is both faster and better) joined by a line; ``baseline`` NDCG as a dashed line."""
    pts = sorted(rows, key=lambda r: r[x])
    fig, ax = _fig((9.5, 4.2))
    ax.scatter([r[x] for r in pts], [r[y] for r in pts], color="#8da0cb", zorder=3)
    front = [r for r in pts if not any(o[x] >= r[x] and o[y] >= r[y] and (o[x], o[y]) != (r[x], r[y]) for o in pts)]
    ax.plot([r[x] for r in front], [r[y] for r in front], color="#fc8d62", lw=1.5, label="Pareto front")
    seen: dict = {}
    for i, r in enumerate(pts, 1):  # points that coincide share one label ("2,3") instead of overprinting
        seen.setdefault((round(r[x], 2), round(r[y], 3)), []).append(str(i))
    for (px, py), ids in seen.items():
        ax.annotate(",".join(ids), (px, py), textcoords="offset points", xytext=(4, 4), fontsize=8)
    key = "\n".join(f"{i}  {r[label]}" for i, r in enumerate(pts, 1))
    ax.text(1.03, 1.0, key, transform=ax.transAxes, va="top", ha="left", fontsize=8, family="monospace")
    if baseline is not None:
        ax.axhline(baseline, color="k", ls="--", lw=1, label="naive loop")
    ax.set_xscale("log")
    return _finish(fig, ax, xlabel=f"{x} over the naive loop (log scale)", ylabel=y, title=title, legend_size=8)
