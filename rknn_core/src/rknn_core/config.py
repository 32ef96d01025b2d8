"""``RKNN.config`` settings: defaults from the vendor guide, validation with plain messages."""

from __future__ import annotations

from typing import Any

import attrs

from rknn_core import validate
from rknn_core.errors import RknnError

# extensions beyond the vendor's 1.x API (the first as in its later releases)
QUANTIZED_ALGORITHMS = ("normal", "kl_divergence", "mmse")


def _scales(value: Any) -> list[float]:
    """One scale for every channel (a number) or one per channel (a list)."""
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]


@attrs.define
class Preprocess:
    """One input's preprocessing: ``out_c = (in[reorder[c]] - mean[c]) / scale[c]``; a single mean or
    scale applies to every channel (``channel_mean_value`` has one scale, ``std_values`` one per channel)."""

    mean: list[float] | None = None
    scale: list[float] = attrs.field(default=1.0, converter=_scales)
    reorder: list[int] | None = None

    @property
    def is_identity(self) -> bool:
        no_mean = self.mean is None or all(m == 0 for m in self.mean)
        no_reorder = self.reorder is None or self.reorder == sorted(self.reorder)
        return no_mean and all(s == 1.0 for s in self.scale) and no_reorder


@attrs.define
class Config:
    """Validated configuration; field names and defaults are the vendor's."""

    batch_size: int = 100
    epochs: int = -1
    channel_mean_value: str | None = None
    reorder_channel: str = "0 1 2"
    # the later vendor releases' form of channel_mean_value: per input, the channels' means and stds
    mean_values: list | None = None
    std_values: list | None = None
    need_horizontal_merge: bool = False
    quantized_dtype: str = "asymmetric_quantized-u8"
    optimization_level: int = 3
    target_platform: list[str] = attrs.field(factory=lambda: ["rk1808"])
    # extensions: calibration range algorithm, and accuracy passes the vendor toolkits lack
    quantized_algorithm: str = "normal"
    cross_layer_equalization: bool = False
    bias_correction: bool = False

    def preprocess(self, n_inputs: int) -> list[Preprocess]:
        """Per-input preprocessing from ``channel_mean_value`` (or ``mean_values``/``std_values``) and
        ``reorder_channel`` (``#``-split)."""
        means = _split_inputs(self.channel_mean_value, n_inputs, "channel_mean_value")
        orders = _split_inputs(self.reorder_channel, n_inputs, "reorder_channel")
        stats = _mean_std(self.mean_values, self.std_values, n_inputs)
        result = []
        for mean_text, order_text, (mean, std) in zip(means, orders, stats):
            pre = Preprocess(mean, std)
            if mean_text:
                pre.mean, pre.scale = validate.mean_group(mean_text)
            if order_text:
                pre.reorder = validate.reorder_group(order_text)
            result.append(pre)
        return result


def _split_inputs(text: str | None, n_inputs: int, what: str) -> list[str | None]:
    if text is None:
        return [None] * n_inputs
    parts = [p.strip() for p in str(text).split("#")]
    if len(parts) == 1:
        return parts * n_inputs
    if len(parts) != n_inputs:
        raise RknnError(f"{what} gives {len(parts)} inputs ('#'-separated) but the model has {n_inputs}")
    return parts


def _mean_std(mean_values: list | None, std_values: list | None, n_inputs: int) -> list[tuple[list[float] | None, Any]]:
    """Per input: (means, stds) from ``mean_values``/``std_values`` (no mean, std 1 where not given)."""
    means = _per_input(mean_values, n_inputs, "mean_values")
    stds = _per_input(std_values, n_inputs, "std_values")
    return [(mean, 1.0 if std is None else std) for mean, std in zip(means, stds)]


def _per_input(values: list | None, n_inputs: int, name: str) -> list[list[float] | None]:
    """One list of per-channel values per input (a bare number: one value for every channel)."""
    if values is None:
        return [None] * n_inputs
    if len(values) != n_inputs:
        raise RknnError(f"config {name} gives {len(values)} input(s) but the model has {n_inputs}; "
                        f"give one list of per-channel values per input")
    return [[float(v) for v in (entry if isinstance(entry, (list, tuple)) else [entry])] for entry in values]


def check_mean_std(cfg: Config) -> None:
    """``mean_values``/``std_values``: one entry per input, each a finite number or a list of them per
    channel (std never 0); not together with ``channel_mean_value``, which says the same thing."""
    if cfg.channel_mean_value is not None and (cfg.mean_values is not None or cfg.std_values is not None):
        raise RknnError("config: channel_mean_value and mean_values/std_values both describe the input "
                        "normalization; give one of them (pass channel_mean_value=None to switch)")
    for name in ("mean_values", "std_values"):
        value = validate.finite_values("config", name, getattr(cfg, name), optional=True)
        numbers = [v for entry in value or () for v in (entry if isinstance(entry, (list, tuple)) else [entry])]
        if name == "std_values" and any(float(v) == 0 for v in numbers):
            raise RknnError(f"config std_values must not hold 0 (inputs are divided by them); got {value!r}")


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
    check_mean_std(cfg)
    return cfg  # target_platform is checked against the installed targets (platforms.check_platforms)
