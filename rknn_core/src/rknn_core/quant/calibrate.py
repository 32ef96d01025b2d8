"""Run the float graph over the calibration samples and collect each tensor's value range.

Three range algorithms (``config(quantized_algorithm=...)``):

- ``normal``: the running min/max of every tensor (the vendor's algorithm, :class:`RangeObserver`).
- ``kl_divergence``: TensorRT's entropy calibration. A second pass collects a 2048-bin histogram of
  every tensor over its min/max range; the clip range whose quantized distribution is closest (in
  Kullback-Leibler divergence) to the clipped reference distribution is chosen.
- ``mmse``: the same histograms; the clip range with the least mean squared quantization error
  (rounding inside the range plus clipping outside) is chosen.

Both searches evaluate a candidate range through the quantizer's own parameters
(``Quantizer.quantize``), so the zero-point rounding of u8 and the power-of-two scales of
dynamic fixed point are part of the cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from rknn_core.ir import Graph
from rknn_core.plugins import Registry
from rknn_core.quant.params import QTYPES, round_half_away
from rknn_core.records import Quantizer
from rknn_core.runtime.executor import Executor

BINS = 2048
# a candidate range spans at least 1/8 of the observed one: 256 u8 levels over >= 256 bins
SHRINK = np.arange(256, BINS + 1, 16) / BINS


class RangeObserver:
    """Running min/max of every observed tensor (the vendor's ``normal`` algorithm)."""

    def __init__(self) -> None:
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}

    def update(self, name: str, value: np.ndarray) -> None:
        if value.size == 0:
            return
        lo, hi = float(np.min(value)), float(np.max(value))
        self.low[name] = min(lo, self.low.get(name, lo))
        self.high[name] = max(hi, self.high.get(name, hi))

    def ranges(self) -> dict[str, tuple[float, float]]:
        return {name: (self.low[name], self.high[name]) for name in self.low}


class HistogramObserver(RangeObserver):
    """A 2048-bin histogram per tensor over a range fixed in advance (the first pass's min/max).

    ``ranges()`` stays min/max; :meth:`searched_ranges` applies KL or MMSE to the histograms.
    """

    def __init__(self, ranges: dict[str, tuple[float, float]], bins: int = BINS) -> None:
        super().__init__()
        self.bins = bins
        self.limits = {name: (min(lo, 0.0), max(hi, 0.0)) for name, (lo, hi) in ranges.items()}
        self.counts: dict[str, np.ndarray] = {}

    def update(self, name: str, value: np.ndarray) -> None:
        super().update(name, value)
        if name not in self.limits or value.size == 0:
            return
        lo, hi = self.limits[name]
        if hi <= lo:
            return
        v = np.asarray(value, dtype=np.float64).ravel()
        index = np.clip(((v - lo) * (self.bins / (hi - lo))).astype(np.int64), 0, self.bins - 1)
        counts = np.bincount(index, minlength=self.bins)
        self.counts[name] = self.counts[name] + counts if name in self.counts else counts

    def searched_ranges(self, algorithm: str, quantizer: Quantizer,
                        names: Iterable[str] | None = None) -> dict[str, tuple[float, float]]:
        """min/max ranges, with those of ``names`` (default: every histogram) replaced by the range
        that ``algorithm`` (``kl_divergence`` or ``mmse``) finds."""
        result = self.ranges()
        for name in self.counts if names is None else names:
            if name in self.counts:
                lo, hi = self.limits[name]
                result[name] = search_range(self.counts[name], lo, hi, algorithm, quantizer)
        return result


def _grids(candidates: list[tuple[float, float]], quantizer: Quantizer) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Scales and zero points (column vectors) of the quantizer for each candidate range."""
    params = [quantizer.quantize(a, b) for a, b in candidates]
    qmin, qmax, _ = QTYPES[params[0].qtype]
    scale = np.array([q.scale[0] for q in params])[:, None]
    zero = np.array([q.zero_point[0] for q in params], dtype=np.float64)[:, None]
    return scale, zero, qmin, qmax


def mmse_cost(counts: np.ndarray, centers: np.ndarray, width: float, candidates: list[tuple[float, float]],
              quantizer: Quantizer) -> np.ndarray:
    """Per candidate range, the expected squared error of quantizing the histogram's values: each
    bin's values uniform over the bin; rounding error inside the grid, clipping error outside."""
    s, z, qmin, qmax = _grids(candidates, quantizer)
    raw = round_half_away(centers[None] / s) + z
    codes = np.clip(raw, qmin, qmax)
    err = (centers[None] - (codes - z) * s) ** 2 + width**2 / 12
    err = np.where((raw == codes) & (width >= s), s * s / 12, err)  # bins wider than a step: s^2/12
    return err @ counts / max(counts.sum(), 1)


def kl_cost(counts: np.ndarray, centers: np.ndarray, width: float, candidates: list[tuple[float, float]],
            quantizer: Quantizer) -> np.ndarray:
    """Per candidate range, KL(P || Q) TensorRT style: P is the histogram with the mass outside the
    grid folded into its edge bins; Q spreads each level's mass evenly over its non-empty bins."""
    s, z, qmin, qmax = _grids(candidates, quantizer)
    n_cand, n_bins, levels = len(candidates), len(counts), qmax - qmin + 1
    raw = round_half_away(centers[None] / s) + z
    inside = (raw >= qmin) & (raw <= qmax)
    sliced = np.where(inside, counts[None], 0).astype(np.float64)
    p = sliced.copy()
    rows = np.arange(n_cand)
    has = inside.any(axis=1)
    first = np.argmax(inside, axis=1)
    last = n_bins - 1 - np.argmax(inside[:, ::-1], axis=1)
    cum = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)])
    p[rows, first] += cum[first]
    p[rows, last] += cum[-1] - cum[last + 1]
    codes = (np.clip(raw, qmin, qmax) - qmin).astype(np.int64) + rows[:, None] * levels
    mass = np.bincount(codes.ravel(), weights=sliced.ravel(), minlength=n_cand * levels)
    filled = np.bincount(codes.ravel(), weights=(sliced > 0).ravel().astype(np.float64), minlength=n_cand * levels)
    q = np.where(sliced > 0, mass[codes] / np.maximum(filled[codes], 1), 0.0)
    return np.where(has, _kl(p, q), np.inf)


def _kl(p: np.ndarray, q: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Row-wise KL divergence of unnormalized histograms; empty bins of ``q`` under mass of ``p``
    get ``eps`` of probability (taken from the others), as TensorRT smooths."""
    p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300)
    q = q / np.maximum(q.sum(axis=1, keepdims=True), 1e-300)
    zeros = (q == 0) & (p > 0)
    nonzero = q > 0
    take = eps * zeros.sum(axis=1, keepdims=True) / np.maximum(nonzero.sum(axis=1, keepdims=True), 1)
    q = np.where(zeros, eps, np.where(nonzero, np.maximum(q - take, eps * 1e-3), q))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / np.where(q > 0, q, 1.0)), 0.0)
    return terms.sum(axis=1)


COSTS: dict[str, Callable[..., np.ndarray]] = {"kl_divergence": kl_cost, "mmse": mmse_cost}


def search_range(counts: np.ndarray, lo: float, hi: float, algorithm: str, quantizer: Quantizer) -> tuple[float, float]:
    """The clip range [a, b] within [lo, hi] that minimizes ``algorithm``'s cost on the histogram.

    First both ends shrink together (which keeps the zero point); then, for a tensor with values of
    both signs, each end is refined alone. A grid with more levels than the histogram has bins
    (16-bit quantizers) keeps min/max.
    """
    levels = QTYPES[quantizer.qtype][1] - QTYPES[quantizer.qtype][0]
    if algorithm not in COSTS or levels >= len(counts) or hi <= lo or counts.sum() == 0:
        return lo, hi
    cost = COSTS[algorithm]
    counts = np.asarray(counts, dtype=np.float64)
    width = (hi - lo) / len(counts)
    centers = lo + (np.arange(len(counts)) + 0.5) * width

    def best(candidates: list[tuple[float, float]]) -> tuple[float, float]:
        return candidates[int(np.argmin(cost(counts, centers, width, candidates, quantizer)))]

    a, b = best([(t * lo, t * hi) for t in SHRINK])
    if lo < 0 < hi:
        b = best([(a, t * hi) for t in SHRINK])[1]
        a = best([(t * lo, b) for t in SHRINK])[0]
    return a, b


def float_tensors(graph: Graph) -> list[str]:
    """Activation tensors that quantization covers: graph inputs and node outputs of float dtype."""
    names = list(graph.inputs) + [o for node in graph.nodes for o in node.outputs if o]
    return [n for n in names if n in graph.tensors and np.dtype(graph.tensors[n].dtype).kind == "f"]


def observe(graph: Graph, registry: Registry, feeds: Iterable[dict[str, np.ndarray]], observer: RangeObserver) -> int:
    """Feed every sample through the float graph; returns the number of samples seen."""
    executor = Executor(graph, registry)
    names = float_tensors(graph)
    count = 0
    for feed in feeds:
        values = executor.run(feed, keep=names)
        for name in names:
            if name in values:
                observer.update(name, np.asarray(values[name]))
        count += 1
    return count
