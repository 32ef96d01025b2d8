"""SSD's PriorBox: the default boxes of one feature map, computed from shapes alone (so a constant)."""

from __future__ import annotations

import math

import numpy as np

from rknn_core.errors import RknnError


def aspect_ratios(given, flip: bool) -> list[float]:
    """1, then each new ratio (and its inverse with ``flip``), duplicates dropped, as SSD's Caffe does."""
    ratios = [1.0]
    for ar in given:
        if any(abs(ar - r) < 1e-6 for r in ratios):
            continue
        ratios.append(float(ar))
        if flip:
            ratios.append(1.0 / float(ar))
    return ratios


def variances(given) -> list[float]:
    given = [float(v) for v in given]
    if len(given) > 1 and len(given) != 4:
        raise RknnError(f"prior_box_param variance takes 1 or 4 values, got {len(given)}")
    return given * 4 if len(given) == 1 else given or [0.1] * 4


def prior_boxes(p, layer_hw: tuple[int, int], image_hw: tuple[int, int]) -> np.ndarray:
    """The (1, 2, H * W * priors * 4) PriorBox output: corner boxes, then their variances."""
    min_sizes, max_sizes = [float(s) for s in p.min_size], [float(s) for s in p.max_size]
    if not min_sizes or min(min_sizes) <= 0:
        raise RknnError("prior_box_param needs positive min_size values")
    if max_sizes and len(max_sizes) != len(min_sizes):
        raise RknnError(f"prior_box_param has {len(min_sizes)} min_size and {len(max_sizes)} max_size values")
    if any(mx <= mn for mn, mx in zip(min_sizes, max_sizes)):
        raise RknnError("prior_box_param max_size must be larger than min_size")
    ratios = aspect_ratios(p.aspect_ratio, p.flip)
    if p.HasField("img_size") or p.HasField("img_h") or p.HasField("img_w"):
        image_hw = (p.img_size, p.img_size) if p.HasField("img_size") else (p.img_h, p.img_w)
    lh, lw = layer_hw
    if p.HasField("step") or p.HasField("step_h") or p.HasField("step_w"):
        step_h, step_w = (p.step, p.step) if p.HasField("step") else (p.step_h, p.step_w)
    else:
        step_h, step_w = image_hw[0] / lh, image_hw[1] / lw
    sizes = []  # (width, height) of each prior of a cell, in SSD's order
    for i, mn in enumerate(min_sizes):
        sizes.append((mn, mn))
        if max_sizes:
            side = math.sqrt(mn * max_sizes[i])
            sizes.append((side, side))
        sizes += [(mn * math.sqrt(ar), mn / math.sqrt(ar)) for ar in ratios if abs(ar - 1.0) >= 1e-6]
    wh = np.asarray(sizes, np.float64)  # (priors, 2)
    cy, cx = np.meshgrid((np.arange(lh) + p.offset) * step_h, (np.arange(lw) + p.offset) * step_w, indexing="ij")
    cx, cy = cx.reshape(-1, 1), cy.reshape(-1, 1)
    img_h, img_w = float(image_hw[0]), float(image_hw[1])
    boxes = np.stack([(cx - wh[:, 0] / 2) / img_w, (cy - wh[:, 1] / 2) / img_h,
                      (cx + wh[:, 0] / 2) / img_w, (cy + wh[:, 1] / 2) / img_h], axis=-1).astype(np.float32)
    if p.clip:
        boxes = np.clip(boxes, 0.0, 1.0)
    flat = boxes.reshape(-1)
    var = np.tile(np.asarray(variances(p.variance), np.float32), flat.size // 4)
    return np.stack([flat, var])[None]
