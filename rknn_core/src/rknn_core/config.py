"""``RKNN.config`` settings: defaults from the vendor guide, validation with plain messages."""

from __future__ import annotations

from typing import Any

import attrs

from rknn_core.errors import RknnError

# extensions beyond the vendor's 1.x API (the first as in its later releases)
QUANTIZED_ALGORITHMS = ("normal", "kl_divergence", "mmse")


@attrs.define
class Preprocess:
    """One input's preprocessing: ``out_c = (in[reorder[c]] - mean[c]) / scale``."""

    mean: list[float] | None = None
    scale: float = 1.0
    reorder: list[int] | None = None

    @property
    def is_identity(self) -> bool:
        no_mean = self.mean is None or all(m == 0 for m in self.mean)
        no_reorder = self.reorder is None or self.reorder == sorted(self.reorder)
        return no_mean and self.scale == 1.0 and no_reorder


@attrs.define
class Config:
    """Validated configuration; field names and defaults are the vendor's."""

    batch_size: int = 100
    epochs: int = -1
    channel_mean_value: str | None = None
    reorder_channel: str = "0 1 2"
    need_horizontal_merge: bool = False
    quantized_dtype: str = "asymmetric_quantized-u8"
    optimization_level: int = 3
    target_platform: list[str] = attrs.field(factory=lambda: ["rk1808"])
    # extensions: calibration range algorithm, and accuracy passes the vendor toolkits lack
    quantized_algorithm: str = "normal"
    cross_layer_equalization: bool = False
    bias_correction: bool = False

    def preprocess(self, n_inputs: int) -> list[Preprocess]:
        """Per-input preprocessing from ``channel_mean_value`` and ``reorder_channel`` (``#``-split)."""
        means = _split_inputs(self.channel_mean_value, n_inputs, "channel_mean_value")
        orders = _split_inputs(self.reorder_channel, n_inputs, "reorder_channel")
        result = []
        for mean_text, order_text in zip(means, orders):
            pre = Preprocess()
            if mean_text:
                values = _floats(mean_text, "channel_mean_value")
                if len(values) < 2:
                    raise RknnError(f"channel_mean_value '{mean_text}' needs means then one scale, e.g. '128 128 128 128'")
                if values[-1] == 0:
                    raise RknnError("channel_mean_value: the scale (last value) must not be 0")
                pre.mean, pre.scale = values[:-1], values[-1]
            if order_text:
                order = [int(v) for v in _floats(order_text, "reorder_channel")]
                if sorted(order) != list(range(len(order))):
                    raise RknnError(f"reorder_channel '{order_text}' must be a permutation like '2 1 0'")
                pre.reorder = order
            result.append(pre)
        return result


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split()]
    except ValueError:
        raise RknnError(f"{what} '{text}' must be numbers separated by spaces") from None


def _split_inputs(text: str | None, n_inputs: int, what: str) -> list[str | None]:
    if text is None:
        return [None] * n_inputs
    parts = [p.strip() for p in str(text).split("#")]
    if len(parts) == 1:
        return parts * n_inputs
    if len(parts) != n_inputs:
        raise RknnError(f"{what} gives {len(parts)} inputs ('#'-separated) but the model has {n_inputs}")
    return parts


def make_config(current: Config, **kwargs: Any) -> Config:
    """A new Config with ``kwargs`` applied; unknown keywords and bad values are refused."""
    known = {f.name for f in attrs.fields(Config)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise RknnError(f"config() got unknown parameter(s): {', '.join(unknown)}; "
                        f"known are: {', '.join(sorted(known))}")
    cfg = attrs.evolve(current, **kwargs)
    for name in ("batch_size", "epochs", "optimization_level"):
        if not isinstance(getattr(cfg, name), int) or isinstance(getattr(cfg, name), bool):
            raise RknnError(f"config {name} must be an integer, got {getattr(cfg, name)!r}")
    if cfg.batch_size < 1:
        raise RknnError(f"config batch_size must be at least 1, got {cfg.batch_size}")
    if cfg.epochs == 0 or cfg.epochs < -1:
        raise RknnError(f"config epochs must be -1 or positive, got {cfg.epochs}")
    if cfg.optimization_level not in (0, 1, 2, 3):
        raise RknnError(f"config optimization_level must be 0, 1, 2 or 3, got {cfg.optimization_level}")
    if not isinstance(cfg.quantized_dtype, str):
        raise RknnError(f"config quantized_dtype must be a quantizer name, got {cfg.quantized_dtype!r}")
    if cfg.quantized_algorithm not in QUANTIZED_ALGORITHMS:
        raise RknnError(f"config quantized_algorithm '{cfg.quantized_algorithm}' is unknown; "
                        f"use one of {', '.join(QUANTIZED_ALGORITHMS)}")
    for name in ("cross_layer_equalization", "bias_correction", "need_horizontal_merge"):
        if not isinstance(getattr(cfg, name), bool):
            raise RknnError(f"config {name} must be True or False, got {getattr(cfg, name)!r}")
    return cfg  # target_platform is checked against the installed targets (platforms.check_platforms)
