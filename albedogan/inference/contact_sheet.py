"""Contact sheets: one row per face, one column per view (e.g. teacher | render | albedo), with column titles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from albedogan.inference.export import save_png, texture_to_uint8

__all__ = ["contact_sheet", "save_contact_sheet"]


def contact_sheet(columns: Sequence[torch.Tensor], titles: Sequence[str] | None = None, cell: int = 128,
                  padding: int = 2, title_height: int = 14) -> np.ndarray:
    """Tile views of N faces into one image.

    Args:
        columns: C tensors (N, 3, h_c, w_c) float RGB in [0, 1] (each column may have its own size; every cell is
            resized to ``cell`` × ``cell``, bilinear with antialiasing).
        titles: optional C column titles drawn in a header strip (``title_height`` pixels; 0 disables).
        cell: cell side in pixels.
        padding: white gap between cells in pixels.

    Returns:
        (H, W, 3) uint8 RGB, H = header + N·(cell + padding) + padding, W = C·(cell + padding) + padding.
    """
    if not columns:
        raise ValueError("contact_sheet: no columns")
    n = columns[0].shape[0]
    for i, col in enumerate(columns):
        if col.ndim != 4 or col.shape[0] != n or col.shape[1] != 3:
            raise ValueError(f"contact_sheet: column {i} must be (N={n}, 3, H, W), got {tuple(col.shape)}")
    if titles is not None and len(titles) != len(columns):
        raise ValueError(f"contact_sheet: {len(titles)} titles for {len(columns)} columns")
    header = title_height if titles else 0
    h = header + n * (cell + padding) + padding
    w = len(columns) * (cell + padding) + padding
    sheet = np.full((h, w, 3), 255, dtype=np.uint8)
    for c, col in enumerate(columns):
        cells = F.interpolate(col.detach().float().cpu(), size=(cell, cell), mode="bilinear", align_corners=False,
                              antialias=True).clamp(0, 1)  # (N, 3, cell, cell)
        x0 = padding + c * (cell + padding)
        for r in range(n):  # one paste per cell (N·C cells, not pixels)
            y0 = header + padding + r * (cell + padding)
            sheet[y0:y0 + cell, x0:x0 + cell] = texture_to_uint8(cells[r])
    if titles and header:
        img = Image.fromarray(sheet)
        draw = ImageDraw.Draw(img)
        for c, title in enumerate(titles):
            draw.text((padding + c * (cell + padding) + 2, 1), str(title), fill=(0, 0, 0))
        sheet = np.asarray(img)
    return sheet


def save_contact_sheet(path: str | os.PathLike, columns: Sequence[torch.Tensor], titles: Sequence[str] | None = None,
                       cell: int = 128) -> Path:
    """:func:`contact_sheet` written as PNG (atomically); returns the path."""
    return save_png(path, contact_sheet(columns, titles, cell=cell))
