"""Render Mandelbrot pixels (``x``, ``y``, ``iterations``) to a PNG with Pillow.

    python examples/mandelbrot/render.py pixels.jsonl mandelbrot.png

``pixels.jsonl`` holds one Pixel per line (what ``varpulis simulate --output``
or an MQTT subscriber writes; JSON arrays of pixels, as ``batch_size``
publishes them, are accepted too). Points that never diverged are black; the
others are coloured by their iteration count on a log scale.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = ["image_array", "render", "save_png"]


def image_array(pixels: Iterable[tuple[int, int, int]], size: int = 1000) -> np.ndarray:
    """A ``size``×``size`` int array of iteration counts (-1 where no pixel arrived)."""
    image = np.full((size, size), -1, dtype=np.int64)
    for x, y, iterations in pixels:
        image[y, x] = iterations
    return image


def render(image: np.ndarray, max_iter: int = 256) -> np.ndarray:
    """RGB bytes (``h``×``w``×3 uint8) for an iteration-count image."""
    counts = np.clip(image, 0, max_iter).astype(np.float64)
    t = np.log1p(counts) / np.log1p(max_iter)
    rgb = np.stack([9 * (1 - t) * t**3, 15 * (1 - t) ** 2 * t**2, 8.5 * (1 - t) ** 3 * t], axis=-1)
    rgb = (np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)
    rgb[image >= max_iter] = 0
    rgb[image < 0] = (40, 40, 40)
    return rgb


def save_png(image: np.ndarray, path: str | Path, max_iter: int = 256) -> Path:
    """Write *image* (iteration counts) as a PNG at *path*; needs Pillow."""
    try:
        from PIL import Image
    except ImportError as exc:  # an optional dependency: say how to get it
        message = "rendering needs Pillow: pip install 'varpulis[examples]' (or pillow)"
        raise SystemExit(message) from exc
    path = Path(path)
    Image.fromarray(render(image, max_iter), mode="RGB").save(path, format="PNG")
    return path


def read_pixels(path: str | Path) -> Iterable[tuple[int, int, int]]:
    """``(x, y, iterations)`` from a JSONL file of Pixel events (objects or arrays)."""
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            if not line.strip():
                continue
            data = json.loads(line)
            for pixel in data if isinstance(data, list) else [data]:
                yield pixel["x"], pixel["y"], pixel["iterations"]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    image = image_array(read_pixels(argv[0]))
    print(f"wrote {save_png(image, argv[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
