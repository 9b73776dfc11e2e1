"""Rendered scenes of the synthetic dataset: one object class = one shape.

Colour, size, position, rotation, background and a small distractor dot vary independently
of the class, so the only signal that tells classes apart is the shape, and the captions'
other words (colour, size, place) are true of the image but useless for the class.
Scenes are drawn at twice the resolution and box-filtered down, for smooth edges.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from trainers.data.shapes_extra import EXTRA_SHAPES, EXTRA_USUAL_COLOUR

Points = np.ndarray  # [k, 2] in unit coordinates, y pointing down
# (kind, points, colour role, line width in unit coordinates); kind "poly" or "line".
Prim = tuple[str, Points, str, float]

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 165, 60),
    "blue": (40, 80, 215),
    "yellow": (240, 210, 40),
    "orange": (245, 135, 30),
    "purple": (135, 60, 180),
    "pink": (240, 130, 180),
    "brown": (125, 78, 40),
    "black": (25, 25, 25),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
}
BACKGROUNDS = ("plain", "grass", "sand", "sky", "wood", "tiles", "snow")


def _circle(cx: float, cy: float, rx: float, ry: float | None = None, n: int = 28) -> Points:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + (ry or rx) * np.sin(t)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> Points:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def _banana() -> list[Prim]:
    t = np.linspace(0, 1, 26)
    ang = math.pi * (0.12 + 0.76 * t)
    width = 0.08 + 0.48 * np.sin(math.pi * t)
    direction = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    centre, radius = np.array([0.0, -0.6]), 1.15
    outer = centre + (radius + width[:, None] / 2) * direction
    inner = centre + (radius - width[:, None] / 2) * direction
    stem = outer[0] + np.array([[0.0, 0.0], [0.12, -0.05], [0.16, -0.2], [0.05, -0.15]])
    return [("poly", np.concatenate([outer, inner[::-1]]), "main", 0), ("poly", stem, "dark", 0)]


def _apple() -> list[Prim]:
    leaf = _circle(0, 0, 0.26, 0.11) @ _rotation(-0.6).T + np.array([0.28, -0.78])
    return [
        ("poly", _circle(-0.3, 0.1, 0.62), "main", 0),
        ("poly", _circle(0.3, 0.1, 0.62), "main", 0),
        ("poly", _circle(0.0, 0.3, 0.6), "main", 0),
        ("poly", _rect(-0.05, -0.85, 0.07, -0.4), "dark", 0),
        ("poly", leaf, "accent", 0),
    ]


def _ball() -> list[Prim]:
    t = np.linspace(-0.85, 0.85, 16)
    seam_left = np.stack([-1.55 + 1.25 * np.cos(t), 1.25 * np.sin(t)], axis=1)
    seam_right = seam_left * np.array([-1.0, 1.0])
    return [
        ("poly", _circle(0, 0, 1.0, n=36), "main", 0),
        ("line", seam_left, "accent", 0.1),
        ("line", seam_right, "accent", 0.1),
    ]


def _box() -> list[Prim]:
    front = _rect(-0.85, -0.35, 0.35, 0.85)
    top = np.array([[-0.85, -0.35], [0.35, -0.35], [0.85, -0.85], [-0.35, -0.85]])
    side = np.array([[0.35, -0.35], [0.85, -0.85], [0.85, 0.35], [0.35, 0.85]])
    return [("poly", front, "main", 0), ("poly", top, "light", 0), ("poly", side, "dark", 0)]


def _star() -> list[Prim]:
    k = np.arange(10)
    r = np.where(k % 2 == 0, 1.0, 0.42)
    ang = -math.pi / 2 + k * math.pi / 5
    return [("poly", np.stack([r * np.cos(ang), r * np.sin(ang)], axis=1), "main", 0)]


def _ring() -> list[Prim]:
    circle = _circle(0, 0, 0.82, n=40)
    return [("line", np.concatenate([circle, circle[:1]]), "main", 0.32)]


def _cross() -> list[Prim]:
    a = 0.3
    pts = [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a),
           (-1, a), (-1, -a), (-a, -a)]  # fmt: skip
    return [("poly", np.array(pts, dtype=float), "main", 0)]


def _tree() -> list[Prim]:
    return [
        ("poly", _rect(-0.15, 0.3, 0.15, 1.0), "dark", 0),
        ("poly", np.array([[0, -0.3], [0.78, 0.45], [-0.78, 0.45]]), "main", 0),
        ("poly", np.array([[0, -1.0], [0.58, -0.15], [-0.58, -0.15]]), "main", 0),
    ]


def _house() -> list[Prim]:
    return [
        ("poly", _rect(-0.7, -0.1, 0.7, 1.0), "main", 0),
        ("poly", np.array([[-0.92, -0.05], [0.0, -0.95], [0.92, -0.05]]), "dark", 0),
        ("poly", _rect(-0.17, 0.42, 0.17, 1.0), "accent", 0),
        ("poly", _rect(0.3, 0.12, 0.55, 0.37), "light", 0),
    ]


def _arrow() -> list[Prim]:
    shaft = _rect(-1.0, -0.14, 0.25, 0.14)
    head = np.array([[0.2, -0.5], [1.0, 0.0], [0.2, 0.5]])
    return [("poly", shaft, "main", 0), ("poly", head, "main", 0)]


# name -> (primitives, largest rotation in degrees: upright things stay roughly upright)
SHAPES: dict[str, tuple[Callable[[], list[Prim]], float]] = {
    "banana": (_banana, 45),
    "apple": (_apple, 25),
    "ball": (_ball, 180),
    "box": (_box, 30),
    "star": (_star, 180),
    "ring": (_ring, 0),
    "cross": (_cross, 20),
    "tree": (_tree, 15),
    "house": (_house, 15),
    "arrow": (_arrow, 60),
}


USUAL_COLOUR = {"banana": "yellow", "apple": "red", "ball": "orange", "box": "brown",
                "star": "purple", "ring": "gray", "cross": "blue", "tree": "green",
                "house": "white", "arrow": "black"}  # fmt: skip
# The first 10 are the default classes (their order is the dataset's class order); the 20
# extra ones come after, so `n_classes` up to 30 takes a prefix and 10 changes nothing.
SHAPES.update(EXTRA_SHAPES)
USUAL_COLOUR.update(EXTRA_USUAL_COLOUR)


def _rotation(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


@dataclass(frozen=True)
class Scene:
    """What a caption may truthfully say about a rendered image."""

    colour: str
    scale: float  # radius of the object as a fraction of half the image side
    background: str  # one of BACKGROUNDS
    background_colour: str  # palette name (plain backgrounds)
    place: str  # "middle", "left", "right", "top", "bottom"
    distractor: str | None  # colour of a small dot, if any


def render(shape: str, rng: np.random.Generator, size: int) -> tuple[Image.Image, Scene]:
    """One image of `shape` with random appearance, and its description."""
    canvas = 2 * size
    background, bg_name, bg_mean, noise_std = _background(rng, canvas)
    colour = _object_colour(shape, rng, bg_mean)
    img = Image.fromarray(background)
    draw = ImageDraw.Draw(img)
    scale = float(rng.uniform(0.45, 0.85))
    radius = scale * canvas / 2
    room = canvas / 2 - radius
    offset = rng.uniform(-0.9, 0.9, size=2) * room
    centre = canvas / 2 + offset
    make, max_turn = SHAPES[shape]
    theta = math.radians(float(rng.uniform(-max_turn, max_turn)))
    colours = _roles(colour, rng)
    distractor = None
    if rng.random() < 0.2:
        distractor = _draw_dot(draw, rng, canvas, exclude=(centre, radius))
    _draw(draw, make(), colours, _rotation(theta), radius, centre)
    # Pixel noise after the downsampling: on the object too, like sensor noise, and 4x
    # fewer random numbers than at the drawing resolution.
    pixels = np.asarray(img.reduce(2), dtype=np.float32)
    pixels += noise_std * rng.standard_normal(pixels.shape, dtype=np.float32)
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    place = _place(offset, room)
    return img, Scene(colour, scale, _BG_KIND[bg_name], bg_name, place, distractor)


# background name (a palette colour for plain ones) -> kind
_BG_KIND: dict[str, str] = {**{c: "plain" for c in PALETTE}, **{k: k for k in BACKGROUNDS[1:]}}
_BG_BASE = {"grass": (70, 145, 55), "sand": (215, 195, 145), "sky": (90, 150, 225),
            "wood": (140, 95, 55), "snow": (236, 238, 245)}  # fmt: skip


def _background(rng: np.random.Generator, c: int) -> tuple[np.ndarray, str, np.ndarray, float]:
    """(smooth background uint8 [c, c, 3], name, mean colour, std of the pixel noise)."""
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    yy = np.arange(c, dtype=np.float32)[:, None, None] / c
    xx = np.arange(c, dtype=np.float32)[None, :, None] / c
    name, noise = kind, 4.0
    arr: np.ndarray
    base: np.ndarray = np.asarray(_BG_BASE.get(kind, (0, 0, 0)), np.float32)
    if kind == "plain":
        name = list(PALETTE)[int(rng.integers(len(PALETTE)))]
        arr = base = np.asarray(PALETTE[name], np.float32)
    elif kind == "grass":
        blades = 10 * np.sin(xx * 90 + 3 * np.sin(yy * 20))
        arr, noise = base + blades * np.array([0.5, 1, 0.4], np.float32), 8.0
    elif kind == "sky":
        bottom = np.array([195, 222, 250], np.float32)
        arr, base = base + (bottom - base) * yy, (base + bottom) / 2
    elif kind == "wood":
        phase = float(rng.uniform(0, 6.3))
        arr = base + 12 * np.sin(yy * 40 + 2.5 * np.sin(xx * 6 + phase))
    elif kind == "tiles":
        # Two shades of one colour: a floor pattern, not a second object-sized contrast.
        n_tiles = int(rng.integers(3, 8))
        ca = np.asarray(list(PALETTE.values())[int(rng.integers(len(PALETTE)))], np.float32)
        cb = ca * 0.75 + 255 * 0.25
        checker = (np.floor(yy * n_tiles) + np.floor(xx * n_tiles)) % 2
        arr, base = ca * (1 - checker) + cb * checker, (ca + cb) / 2
    else:  # sand, snow: flat colour, grainy
        arr, noise = base, (7.0 if kind == "sand" else 5.0)
    arr = np.broadcast_to(np.clip(arr, 0, 255).astype(np.uint8), (c, c, 3))
    return np.ascontiguousarray(arr), name, base, noise


def _object_colour(shape: str, rng: np.random.Generator, bg_mean: np.ndarray) -> str:
    """Half the time the shape's usual colour (bananas are mostly yellow), else any colour
    that stands out from the background. The usual colour is an easy first cue for a tiny
    model; the other half keeps the shape the only reliable one."""
    far = [n for n in PALETTE if np.linalg.norm(np.asarray(PALETTE[n]) - bg_mean) > 110]
    usual = USUAL_COLOUR[shape]
    if rng.random() < 0.5 and usual in far:
        return usual
    pool = far or list(PALETTE)
    return pool[int(rng.integers(len(pool)))]


def _jitter(
    rgb: tuple[int, int, int], rng: np.random.Generator, amount: int = 18
) -> tuple[int, ...]:
    return tuple(int(np.clip(v + rng.integers(-amount, amount + 1), 0, 255)) for v in rgb)


def _roles(colour: str, rng: np.random.Generator) -> dict[str, tuple[int, ...]]:
    main = np.asarray(_jitter(PALETTE[colour], rng), dtype=float)
    others = [n for n in PALETTE if n != colour]
    accent = PALETTE[others[int(rng.integers(len(others)))]]
    return {
        "main": tuple(int(v) for v in main),
        "dark": tuple(int(v) for v in main * 0.55),
        "light": tuple(int(v) for v in main * 0.6 + 255 * 0.4),
        "accent": _jitter(accent, rng),
    }


def _draw(
    draw: ImageDraw.ImageDraw,
    prims: list[Prim],
    colours: dict[str, tuple[int, ...]],
    rotation: np.ndarray,
    radius: float,
    centre: np.ndarray,
) -> None:
    # Normalise every shape to the unit disc so that `radius` means the same for all.
    all_points = np.concatenate([p[1] for p in prims])
    lo, hi = all_points.min(axis=0), all_points.max(axis=0)
    mid, half = (lo + hi) / 2, float(np.max(hi - lo)) / 2
    for kind, points, role, width in prims:
        xy = ((points - mid) / half) @ rotation.T * radius + centre
        flat = [(float(x), float(y)) for x, y in xy]
        if kind == "poly":
            draw.polygon(flat, fill=colours[role])
        else:
            w = max(1, round(width / half * radius))
            draw.line(flat, fill=colours[role], width=w, joint="curve")


def _draw_dot(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    canvas: int,
    exclude: tuple[np.ndarray, float],
) -> str:
    colour = list(PALETTE)[int(rng.integers(len(PALETTE)))]
    r = float(rng.uniform(0.06, 0.09)) * canvas
    for _ in range(8):  # prefer a spot away from the object
        x, y = rng.uniform(r, canvas - r, size=2)
        if np.hypot(x - exclude[0][0], y - exclude[0][1]) > exclude[1] + r:
            break
    draw.ellipse((x - r, y - r, x + r, y + r), fill=_jitter(PALETTE[colour], rng))
    return colour


def _place(offset: np.ndarray, room: float) -> str:
    dx, dy = (offset / room) if room > 0 else (0.0, 0.0)
    if max(abs(dx), abs(dy)) < 0.4:
        return "middle"
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "top" if dy < 0 else "bottom"
