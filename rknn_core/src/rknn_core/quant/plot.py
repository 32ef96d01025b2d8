"""The per-layer cosine-distance plot of ``accuracy_analysis``, drawn with Pillow (no matplotlib).

Two curves over the layers in graph order: the accumulated distance (quantized model run from the
input) and the isolated one (the layer alone on float inputs), on a log10 axis so that 1e-5 and
1e-2 are both readable.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

FLOOR = 1e-8  # cosine distances below this (0 included) are drawn on the floor of the axis
ACCUMULATED = (31, 119, 180)
ISOLATED = (255, 127, 14)
GRID = (225, 225, 225)
INK = (30, 30, 30)
LEFT, RIGHT, TOP, BOTTOM = 88, 24, 64, 64


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _decades(values: Sequence[float]) -> tuple[int, int]:
    """The log10 range of the axis: whole decades around the finite values, at least one."""
    logs = [math.log10(max(v, FLOOR)) for v in values if math.isfinite(v)]
    if not logs:
        return -8, -7
    lo, hi = math.floor(min(logs)), math.ceil(max(logs))
    return lo, max(hi, lo + 1)


def cosine_plot(labels: Sequence[str], accumulated: Sequence[float], isolated: Sequence[float],
                title: str = "Cosine distance to float per layer") -> bytes:
    """PNG bytes of the plot; ``labels`` name the x positions (layer ids), ``nan`` values are skipped."""
    n = len(labels)
    width = min(max(LEFT + RIGHT + 14 * n, 800), 4000)
    height = 480
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(14), _font(11)
    x0, x1, y0, y1 = LEFT, width - RIGHT, TOP, height - BOTTOM
    lo, hi = _decades(list(accumulated) + list(isolated))

    def px(index: int) -> float:
        return x0 + (x1 - x0) * (index + 0.5) / max(n, 1)

    def py(value: float) -> float:
        return y1 - (y1 - y0) * (math.log10(max(value, FLOOR)) - lo) / (hi - lo)

    step = max(1, (hi - lo + 7) // 8)
    for decade in range(lo, hi + 1, step):  # horizontal grid and y tick labels
        y = py(10.0**decade)
        draw.line([(x0, y), (x1, y)], fill=GRID)
        text = f"<=1e{decade}" if decade == lo and 10.0**lo <= FLOOR else f"1e{decade}"
        draw.text((x0 - 6 - draw.textlength(text, font=small), y - 6), text, fill=INK, font=small)
    every = max(1, math.ceil(n * 36 / max(x1 - x0, 1)))  # x tick labels that do not overlap
    for index in range(0, n, every):
        x = px(index)
        draw.line([(x, y1), (x, y1 + 4)], fill=INK)
        text = str(labels[index])
        draw.text((x - draw.textlength(text, font=small) / 2, y1 + 6), text, fill=INK, font=small)
    draw.rectangle([x0, y0, x1, y1], outline=INK)
    for values, color in ((accumulated, ACCUMULATED), (isolated, ISOLATED)):
        points = [(px(i), py(v)) for i, v in enumerate(values) if math.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        for x, y in points:
            draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=color)
    draw.text((x0, 12), title, fill=INK, font=_font(16))
    xlabel = "layer id (graph order)"
    draw.text(((x0 + x1 - draw.textlength(xlabel, font=font)) / 2, height - 28), xlabel, fill=INK, font=font)
    _vertical_label(image, "cosine distance (1 - cos), log scale", font, (8, (y0 + y1) / 2))
    _legend(draw, font, x1, [("accumulated", ACCUMULATED), ("isolated (layer alone)", ISOLATED)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _vertical_label(image: Image.Image, text: str, font: ImageFont.ImageFont, at: tuple[float, float]) -> None:
    """``text`` rotated 90 degrees, its centre at ``at``'s height, its left edge at ``at[0]``."""
    probe = ImageDraw.Draw(image)
    w, h = int(probe.textlength(text, font=font)) + 4, 20
    label = Image.new("RGB", (w, h), "white")
    ImageDraw.Draw(label).text((2, 2), text, fill=INK, font=font)
    rotated = label.rotate(90, expand=True)
    image.paste(rotated, (int(at[0]), int(at[1] - rotated.height / 2)))


def _legend(draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont, right: float,
            entries: list[tuple[str, tuple[int, int, int]]]) -> None:
    """Legend entries side by side, right-aligned above the plot area."""
    x = right
    for text, color in reversed(entries):
        x -= draw.textlength(text, font=font)
        draw.text((x, 40), text, fill=INK, font=font)
        x -= 30
        draw.line([(x, 48), (x + 22, 48)], fill=color, width=3)
        draw.ellipse([x + 8, 45, x + 14, 51], fill=color)
        x -= 18
