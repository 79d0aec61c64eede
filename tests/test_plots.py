import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib import plots  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_every_plot_returns_a_figure_headless():
    rng = np.random.default_rng(0)
    p, y = rng.random(50), rng.random(50) < 0.5
    figs = [
        plots.attention_heatmap(["q1", "q2"], ["d1", "d2", "d3"], rng.random((2, 3))),
        plots.reliability_diagram({"model": (p, y)}),
        plots.logit_histogram(rng.normal(size=50), y),
        plots.metric_vs_k(pd.DataFrame({"k": [5, 10], "recall": [0.5, 0.7]})),
        plots.gain_histogram([0.1, -0.1, 0.0]),
        plots.latency_vs_quality([{"K": 10, "seconds per query": 0.1, "fused ndcg@10": 0.6},
                                  {"K": 30, "seconds per query": 0.3, "fused ndcg@10": 0.65}]),
    ]
    assert all(isinstance(f, Figure) for f in figs)
    assert figs[4].axes[0].get_title() == "1 better, 1 worse, 1 tied"


def test_pareto_numbers_points_and_keys_them_beside_the_axes():
    rows = [{"name": "naive loop", "speedup": 1.0, "ndcg@10": 0.72}, {"name": "bf16", "speedup": 1.0, "ndcg@10": 0.72},
            {"name": "adaptive K", "speedup": 4.0, "ndcg@10": 0.71}, {"name": "distilled", "speedup": 3.0, "ndcg@10": 0.5}]
    fig = plots.pareto(rows, baseline=0.72)
    ax = fig.axes[0]
    labels = {t.get_text() for t in ax.texts}
    assert "1,2" in labels  # coinciding points share one label instead of overprinting
    key = next(t.get_text() for t in ax.texts if "\n" in t.get_text())
    assert key.splitlines()[-1].endswith("adaptive K") and "distilled" in key  # sorted by speed-up



def test_metric_vs_k_ticks_are_the_ks():


    fig = plots.metric_vs_k(pd.DataFrame({"k": [3, 10, 100], "recall": [0.5, 0.8, 0.9]}))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["3", "10", "100"]



def test_metric_vs_k_weights_get_a_linear_axis_with_readable_labels():
    """A fusion-weight sweep (0 to 1) is not squeezed onto a log axis with every label '0'."""
    import pandas as pd

    weights = [round(0.05 * i, 2) for i in range(21)]
    fig = plots.metric_vs_k(pd.DataFrame({"weight": weights, "ndcg@10": [0.6 + 0.005 * i for i in range(21)]}), x="weight")
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "0" and labels[-1] == "1" and "0.5" in labels and len(labels) <= 12
