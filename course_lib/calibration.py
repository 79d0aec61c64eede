"""From raw logits to probabilities you can put a threshold on.

A cross-encoder outputs a *logit*: any real number, on a scale that differs from model to
model (and, for the course reranker, from training run to training run).  "Keep results
with score >= 0.5" only means something once scores are probabilities of relevance.
:class:`Calibration` maps a logit ``z`` to ``sigmoid(a * z + b)``:

* ``a = 1, b = 0``: the plain sigmoid (what ``CrossEncoder.predict`` applies by default);
* temperature scaling: ``b = 0``, ``a = 1 / T`` fitted on labelled data;
* Platt scaling: ``a`` and ``b`` both fitted on labelled data (:meth:`Calibration.fit`).

:func:`expected_calibration_error` measures how far predicted probabilities are from the
observed rate of relevance (0 = perfectly calibrated).

Example
-------
>>> cal = Calibration.fit([-3.0, -1.0, 1.0, 3.0, 2.0, -2.0], [0, 0, 1, 1, 1, 0])
>>> p = cal.probabilities([-3.0, 3.0])
>>> bool(p[0] < 0.5 < p[1])
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def sigmoid(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


@dataclass(frozen=True)
class Calibration:
    """``p = sigmoid(a * logit + b)``."""

    a: float = 1.0
    b: float = 0.0

    def probabilities(self, logits) -> np.ndarray:
        return sigmoid(self.a * np.asarray(logits, dtype=np.float64) + self.b)

    @classmethod
    def fit(cls, logits, labels, temperature_only: bool = False, l2: float = 1e-4, iters: int = 100) -> "Calibration":
        """Fit by maximum likelihood (Newton's method) on held-out (logit, 0/1 label) pairs.

        Raises:
            ValueError: if the labels are all one class (nothing to calibrate against).
        """
        z = np.asarray(logits, dtype=np.float64).ravel()
        y = (np.asarray(labels, dtype=np.float64).ravel() > 0).astype(np.float64)
        if z.shape != y.shape or z.size == 0:
            raise ValueError("logits and labels must be non-empty and of equal length")
        if y.min() == y.max():
            raise ValueError("calibration needs both relevant and non-relevant examples")
        X = np.stack([z, np.ones_like(z)], 1)
        if temperature_only:
            X = X[:, :1]
        def nll(w):
            m = X @ w
            return float(np.sum(np.logaddexp(0.0, m) - y * m) + 0.5 * l2 * w @ w)

        w = np.zeros(X.shape[1])  # IRLS from zero, with step halving: plain Newton can oscillate
        for _ in range(iters):
            p = sigmoid(X @ w)
            grad = X.T @ (p - y) + l2 * w
            H = (X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(X.shape[1])
            step = np.linalg.solve(H, grad)
            t, f0 = 1.0, nll(w)
            while nll(w - t * step) > f0 and t > 1e-6:
                t /= 2
            w = w - t * step
            if np.abs(t * step).max() < 1e-10:
                break
        return cls(float(w[0]), float(w[1]) if not temperature_only else 0.0)


def expected_calibration_error(probabilities, labels, n_bins: int = 10) -> float:
    """ECE: the bin-size-weighted gap between mean predicted probability and observed frequency."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = (np.asarray(labels, dtype=np.float64).ravel() > 0).astype(np.float64)
    if p.size == 0:
        raise ValueError("no predictions")
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return float(ece)


def reliability_table(probabilities, labels, n_bins: int = 10):
    """Rows of (bin low, bin high, count, mean predicted, observed rate) for a reliability plot."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = (np.asarray(labels, dtype=np.float64).ravel() > 0).astype(np.float64)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            rows.append((b / n_bins, (b + 1) / n_bins, int(mask.sum()), float(p[mask].mean()), float(y[mask].mean())))
    return rows


def threshold_for_precision(probabilities, labels, target: float = 0.8, min_support: int = 5) -> float | None:
    """The lowest probability threshold whose precision on held-out (probability, label) pairs
    reaches ``target`` with at least ``min_support`` passages above it; None if none does (then a
    system should abstain rather than pretend).

    >>> threshold_for_precision([0.9, 0.8, 0.7, 0.6, 0.2], [1, 1, 0, 1, 0], target=0.75, min_support=2)
    0.6
    >>> threshold_for_precision([0.9, 0.1], [0, 1], target=0.9, min_support=1) is None
    True
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if p.shape != y.shape:
        raise ValueError("probabilities and labels must have the same length")
    order = np.argsort(-p, kind="stable")
    p, y = p[order], y[order]
    hits = np.cumsum(y)
    best = None
    for i in range(len(p)):
        if i + 1 < len(p) and p[i + 1] == p[i]:
            continue  # a threshold keeps every tie
        n = i + 1
        if n >= min_support and hits[i] / n >= target:
            best = float(p[i])
    return best
