"""SSD's DetectionOutput as an op (``CaffeDetectionOutput``): decode the boxes, per-class NMS, keep the best.

Inputs: loc (N, priors * 4 * loc classes), conf (N, priors * classes), priors (1, 2, priors * 4).
Output: (N, 1, rows, 7) rows of [image id, label, score, xmin, ymin, xmax, ymax], in Caffe's order
(label ascending, then NMS order); ``rows`` is fixed (keep_top_k, or every candidate when it is -1)
and the rows after the detections are filled with -1.
"""

from __future__ import annotations

import numpy as np

from rknn_core.errors import RknnError
from rknn_core.ir import TensorInfo
from rknn_core.records import Cost, OpDef

CORNER, CENTER_SIZE, CORNER_SIZE = 1, 2, 3


def rows(attrs: dict, priors: int) -> int:
    keep, top_k = int(attrs.get("keep_top_k", -1)), int(attrs.get("top_k", -1))
    per_class = priors if top_k < 0 else min(top_k, priors)
    classes = int(attrs["num_classes"]) - (0 <= int(attrs.get("background_label_id", 0)) < int(attrs["num_classes"]))
    candidates = max(1, per_class * classes)
    return min(keep, candidates) if keep > 0 else candidates


def _geometry(loc, conf, prior, attrs: dict) -> tuple[int, int, int]:
    classes = int(attrs["num_classes"])
    loc_classes = 1 if attrs.get("share_location", True) else classes
    priors = prior[2] // 4
    if len(prior) != 3 or prior[1] != 2 or prior[2] % 4:
        raise RknnError(f"the priors must have shape (1, 2, priors * 4), got {list(prior)}")
    if int(np.prod(loc[1:])) != priors * 4 * loc_classes or int(np.prod(conf[1:])) != priors * classes:
        raise RknnError(f"loc {list(loc)} and conf {list(conf)} do not fit {priors} priors and {classes} classes")
    return classes, loc_classes, priors


def _infer(inputs: list[TensorInfo | None], attrs: dict) -> list[TensorInfo]:
    loc, conf, prior = inputs
    _, _, priors = _geometry(loc.shape, conf.shape, prior.shape, attrs)
    return [TensorInfo((loc.shape[0], 1, rows(attrs, priors), 7), "float32")]


def decode(loc: np.ndarray, prior: np.ndarray, var: np.ndarray, code: int, encoded: bool) -> np.ndarray:
    """Boxes (priors, 4) from the predicted offsets ``loc`` (priors, 4) and the priors (corner form)."""
    v = np.ones_like(var) if encoded else var
    pw, ph = prior[:, 2] - prior[:, 0], prior[:, 3] - prior[:, 1]
    if code == CORNER:
        return prior + v * loc
    if code == CORNER_SIZE:
        return prior + v * loc * np.stack([pw, ph, pw, ph], axis=1)
    if code != CENTER_SIZE:
        raise RknnError(f"unknown code_type {code}")
    cx = v[:, 0] * loc[:, 0] * pw + (prior[:, 0] + prior[:, 2]) / 2
    cy = v[:, 1] * loc[:, 1] * ph + (prior[:, 1] + prior[:, 3]) / 2
    w, h = np.exp(v[:, 2] * loc[:, 2]) * pw, np.exp(v[:, 3] * loc[:, 3]) * ph
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _area(b: np.ndarray) -> np.ndarray:
    w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    return np.where((w < 0) | (h < 0), 0.0, w * h)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, overlap: float, top_k: int, eta: float) -> list[int]:
    """Caffe's ApplyNMSFast: candidates above ``threshold`` by descending score (stable), greedy suppression."""
    order = np.flatnonzero(scores > threshold)
    order = order[np.argsort(-scores[order], kind="stable")]
    if top_k > -1:
        order = order[:top_k]
    kept: list[int] = []
    limit = overlap
    for idx in order:
        if kept:
            k = boxes[kept]
            b = boxes[idx]
            iw = np.minimum(k[:, 2], b[2]) - np.maximum(k[:, 0], b[0])
            ih = np.minimum(k[:, 3], b[3]) - np.maximum(k[:, 1], b[1])
            inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
            iou = np.where(inter > 0, inter / np.maximum(_area(k) + _area(b) - inter, 1e-30), 0.0)
            if np.any(iou > limit):
                continue
        kept.append(int(idx))
        if eta < 1 and limit > 0.5:
            limit *= eta
    return kept


def _kernel(inputs: list[np.ndarray], attrs: dict) -> list[np.ndarray]:
    loc, conf, prior = inputs
    classes, loc_classes, priors = _geometry(loc.shape, conf.shape, prior.shape, attrs)
    n = loc.shape[0]
    background = int(attrs.get("background_label_id", 0))
    out = np.full((n, 1, rows(attrs, priors), 7), -1.0, np.float32)
    boxes_p = prior[0, 0].reshape(priors, 4).astype(np.float64)
    var = prior[0, 1].reshape(priors, 4).astype(np.float64)
    for i in range(n):
        locs = loc[i].reshape(priors, loc_classes, 4).astype(np.float64)
        scores = conf[i].reshape(priors, classes).astype(np.float64)
        decoded = [decode(locs[:, c], boxes_p, var, int(attrs.get("code_type", CORNER)),
                          bool(attrs.get("variance_encoded_in_target", False))) for c in range(loc_classes)]
        found = {}
        for c in range(classes):
            if c == background:
                continue
            boxes = decoded[0 if loc_classes == 1 else c]
            found[c] = nms(boxes, scores[:, c], float(attrs.get("confidence_threshold", -np.inf)),
                           float(attrs.get("nms_threshold", 0.3)), int(attrs.get("top_k", -1)),
                           float(attrs.get("eta", 1.0)))
        keep = int(attrs.get("keep_top_k", -1))
        if keep > -1 and sum(len(v) for v in found.values()) > keep:
            pairs = sorted(((scores[j, c], c, j) for c, idx in found.items() for j in idx), key=lambda t: -t[0])[:keep]
            found = {c: [j for _, cc, j in pairs if cc == c] for c in sorted({c for _, c, _ in pairs})}
        r = 0
        for c in sorted(found):
            boxes = decoded[0 if loc_classes == 1 else c]
            for j in found[c]:
                if r < out.shape[2]:
                    out[i, 0, r] = [i, c, scores[j, c], *boxes[j]]
                r += 1
    return [out]


def _cost(inputs, outputs, attrs) -> Cost:
    return Cost(macs=int(inputs[1].size) * 8, bytes=sum(int(t.nbytes) for t in inputs if t is not None))


OPS = [OpDef("CaffeDetectionOutput", _infer, _kernel, _cost, min_inputs=3, max_inputs=3,
             doc="SSD DetectionOutput: decode boxes, per-class NMS, keep_top_k; fixed rows padded with -1")]
