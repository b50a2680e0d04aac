"""Rectangles in frame pixel coordinates: padding, clipping and the mask they cover.

Boxes are half-open, ``x0 <= x < x1`` and ``y0 <= y < y1``, on the frame's pixel grid (columns,
rows), the same convention as numpy slicing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, order=True)
class Box:
    """A region to blank; ``score`` is the detector's peak probability (1.0 for fixed rules)."""

    x0: int
    y0: int
    x1: int
    y1: int
    score: float = 1.0
    source: str = "model"  # "model", "signature", "us-regions"

    @property
    def width(self) -> int:
        return max(0, self.x1 - self.x0)

    @property
    def height(self) -> int:
        return max(0, self.y1 - self.y0)

    @property
    def area(self) -> int:
        return self.width * self.height

    def padded(self, pad_px: int, pad_fraction: float = 0.0) -> Box:
        """Grow on every side by ``pad_px`` plus ``pad_fraction`` of the box height."""
        p = int(pad_px + round(pad_fraction * self.height))
        return Box(self.x0 - p, self.y0 - p, self.x1 + p, self.y1 + p, self.score, self.source)

    def clipped(self, rows: int, columns: int) -> Box | None:
        """Restricted to the frame; ``None`` when nothing of it is inside."""
        x0, y0 = max(0, self.x0), max(0, self.y0)
        x1, y1 = min(columns, self.x1), min(rows, self.y1)
        if x1 <= x0 or y1 <= y0:
            return None
        return Box(x0, y0, x1, y1, self.score, self.source)


def prepare(boxes: Iterable[Box], rows: int, columns: int, pad_px: int = 0,
            pad_fraction: float = 0.0) -> list[Box]:
    """Pad each box, clip it to the frame and drop the ones left empty."""
    out = []
    for b in boxes:
        c = b.padded(pad_px, pad_fraction).clipped(rows, columns)
        if c is not None:
            out.append(c)
    return out


def boxes_mask(boxes: Iterable[Box], rows: int, columns: int) -> np.ndarray:
    """The union of ``boxes`` (already clipped or not) as a boolean (rows, columns) mask."""
    m = np.zeros((rows, columns), bool)
    for b in boxes:
        c = b.clipped(rows, columns)
        if c is not None:
            m[c.y0:c.y1, c.x0:c.x1] = True
    return m
