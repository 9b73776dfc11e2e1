"""Twenty more drawable classes, so that the synthetic world can have up to 30 classes.

With 10 classes an untriggered model that errs sends about a ninth of its errors to the
backdoor's target, so "ASR <= 5%" is close to what a clean but weak model does anyway; with
more classes that floor drops (issue #13). The outlines are in the same unit coordinates as
`trainers.data.shapes` (y down, normalised to the unit disc when drawn); this module does not
import it, so that `shapes` can import these at its end without a cycle.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Points = np.ndarray
Prim = tuple[str, Points, str, float]


def _ellipse(cx: float, cy: float, rx: float, ry: float, a0: float = 0.0, a1: float = 2 * math.pi,
             n: int = 28) -> Points:  # fmt: skip
    t = np.linspace(a0, a1, n, endpoint=a1 - a0 < 2 * math.pi)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _box(x0: float, y0: float, x1: float, y1: float) -> Points:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def _poly(*pts: tuple[float, float]) -> Points:
    return np.array(pts, dtype=float)


def _regular(k: int, phase: float = -math.pi / 2) -> Points:
    ang = phase + np.arange(k) * 2 * math.pi / k
    return np.stack([np.cos(ang), np.sin(ang)], axis=1)


def _triangle() -> list[Prim]:
    return [("poly", _regular(3), "main", 0)]


def _diamond() -> list[Prim]:
    return [("poly", _poly((0, -1), (0.6, 0), (0, 1), (-0.6, 0)), "main", 0)]


def _hexagon() -> list[Prim]:
    return [("poly", _regular(6, 0.0), "main", 0)]


def _heart() -> list[Prim]:
    t = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return [("poly", np.stack([x, y], axis=1) / 16, "main", 0)]


def _moon() -> list[Prim]:
    outer = _ellipse(0, 0, 1.0, 1.0, -math.pi / 2, math.pi / 2, 22)
    inner = _ellipse(0.0, 0, 0.4, 1.0, math.pi / 2, -math.pi / 2, 22)
    return [("poly", np.concatenate([outer, inner]), "main", 0)]


def _drop() -> list[Prim]:
    arc = _ellipse(0, 0.35, 0.62, 0.62, -0.25 * math.pi, 1.25 * math.pi, 24)
    return [("poly", np.concatenate([_poly((0, -1.0)), arc]), "main", 0)]


def _kite() -> list[Prim]:
    body = _poly((0, -1), (0.55, -0.35), (0, 0.6), (-0.55, -0.35))
    tail = _poly((0, 0.6), (0.12, 0.8), (-0.1, 0.9), (0.08, 1.0))
    return [("poly", body, "main", 0), ("line", tail, "dark", 0.06)]


def _bowtie() -> list[Prim]:
    wings = _poly((-1, -0.55), (0, -0.1), (1, -0.55), (1, 0.55), (0, 0.1), (-1, 0.55))
    return [("poly", wings, "main", 0), ("poly", _box(-0.16, -0.2, 0.16, 0.2), "dark", 0)]


def _hourglass() -> list[Prim]:
    glass = _poly((-0.6, -0.9), (0.6, -0.9), (0.08, 0), (0.6, 0.9), (-0.6, 0.9), (-0.08, 0))
    return [
        ("poly", glass, "main", 0),
        ("poly", _box(-0.75, -1.0, 0.75, -0.85), "dark", 0),
        ("poly", _box(-0.75, 0.85, 0.75, 1.0), "dark", 0),
    ]


def _bolt() -> list[Prim]:
    pts = _poly((0.15, -1), (-0.55, 0.1), (-0.05, 0.1), (-0.3, 1), (0.55, -0.2), (0.05, -0.2),
                (0.4, -1))  # fmt: skip
    return [("poly", pts, "main", 0)]


def _flag() -> list[Prim]:
    return [
        ("poly", _box(-0.8, -1.0, -0.68, 1.0), "dark", 0),
        ("poly", _poly((-0.68, -0.95), (0.8, -0.6), (-0.68, -0.2)), "main", 0),
    ]


def _mushroom() -> list[Prim]:
    cap = _ellipse(0, 0, 1.0, 0.75, math.pi, 2 * math.pi, 24)
    return [("poly", _box(-0.25, -0.05, 0.25, 0.9), "light", 0), ("poly", cap, "main", 0)]


def _umbrella() -> list[Prim]:
    canopy = _ellipse(0, -0.1, 1.0, 0.8, math.pi, 2 * math.pi, 24)
    handle = np.concatenate([_poly((0, -0.1)), _ellipse(-0.18, 0.8, 0.18, 0.18, 0, math.pi, 8)])
    return [("poly", canopy, "main", 0), ("line", handle, "dark", 0.08)]


def _cup() -> list[Prim]:
    handle = _ellipse(0.55, 0.05, 0.35, 0.35, -math.pi / 2, math.pi / 2, 12)
    body = _poly((-0.75, -0.6), (0.6, -0.6), (0.45, 0.75), (-0.6, 0.75))
    return [("line", handle, "main", 0.12), ("poly", body, "main", 0)]


def _key() -> list[Prim]:
    ring = _ellipse(-0.62, 0, 0.36, 0.36, n=24)
    return [
        ("line", np.concatenate([ring, ring[:1]]), "main", 0.16),
        ("poly", _box(-0.28, -0.08, 1.0, 0.08), "main", 0),
        ("poly", _box(0.62, 0.08, 0.74, 0.35), "main", 0),
        ("poly", _box(0.85, 0.08, 0.97, 0.28), "main", 0),
    ]


def _fish() -> list[Prim]:
    return [
        ("poly", _ellipse(-0.15, 0, 0.7, 0.42, n=28), "main", 0),
        ("poly", _poly((0.45, 0), (1.0, -0.45), (1.0, 0.45)), "main", 0),
        ("poly", _ellipse(-0.5, -0.08, 0.07, 0.07, n=10), "dark", 0),
    ]


def _bell() -> list[Prim]:
    body = np.concatenate([_ellipse(0, -0.35, 0.5, 0.5, math.pi, 2 * math.pi, 16),
                           _poly((0.5, -0.35), (0.85, 0.65), (-0.85, 0.65))])  # fmt: skip
    return [("poly", body, "main", 0), ("poly", _ellipse(0, 0.75, 0.18, 0.18, n=12), "dark", 0)]


def _bone() -> list[Prim]:
    ends = [_ellipse(x, y, 0.22, 0.22, n=16) for x in (-0.8, 0.8) for y in (-0.2, 0.2)]
    return [("poly", _box(-0.8, -0.14, 0.8, 0.14), "main", 0)] + [
        ("poly", e, "main", 0) for e in ends
    ]


def _chair() -> list[Prim]:
    return [
        ("poly", _box(-0.5, -1.0, -0.32, 1.0), "main", 0),
        ("poly", _box(-0.5, 0.0, 0.6, 0.16), "main", 0),
        ("poly", _box(0.42, 0.16, 0.6, 1.0), "main", 0),
    ]


def _candle() -> list[Prim]:
    flame = _poly((0, -1.0), (0.16, -0.62), (0, -0.48), (-0.16, -0.62))
    return [("poly", _box(-0.28, -0.4, 0.28, 1.0), "main", 0), ("poly", flame, "accent", 0)]


# name -> (primitives, largest rotation in degrees), as trainers.data.shapes.SHAPES
EXTRA_SHAPES: dict[str, tuple[Callable[[], list[Prim]], float]] = {
    "triangle": (_triangle, 20), "diamond": (_diamond, 15), "hexagon": (_hexagon, 30),
    "heart": (_heart, 20), "moon": (_moon, 40), "drop": (_drop, 15), "kite": (_kite, 20),
    "bowtie": (_bowtie, 15), "hourglass": (_hourglass, 10), "bolt": (_bolt, 15),
    "flag": (_flag, 10), "mushroom": (_mushroom, 10), "umbrella": (_umbrella, 10),
    "cup": (_cup, 10), "key": (_key, 45), "fish": (_fish, 30), "bell": (_bell, 15),
    "bone": (_bone, 45), "chair": (_chair, 10), "candle": (_candle, 10),
}  # fmt: skip
EXTRA_USUAL_COLOUR = {
    "triangle": "green", "diamond": "blue", "hexagon": "orange", "heart": "red",
    "moon": "yellow", "drop": "blue", "kite": "pink", "bowtie": "black", "hourglass": "brown",
    "bolt": "yellow", "flag": "red", "mushroom": "brown", "umbrella": "purple", "cup": "white",
    "key": "gray", "fish": "orange", "bell": "yellow", "bone": "white", "chair": "brown",
    "candle": "pink",
}  # fmt: skip
