"""Procedural scenarios with exact ground truth, to measure how tracking generalises.

A scene is drawn from a *family* (what it is about: walking, fast starts and stops, U-turns,
occluders, leaving the frame, a moving camera, animals that touch, animals that cross over each
other) and a *seed*. Every other factor is drawn at random from the seed, independently of the
family: frame size, animal length (3-15 patches at working resolution), body and floor texture
(from uniform to strong, the floor sometimes like the body), speed (0-25 px per frame with
sudden starts and stops), head turns, light (dimming, flicker), sensor noise, motion blur,
compression, zoom and camera shake. Animals of one scene look the same: only their place tells
them apart.

The animal is seen from above: a torso, a head that turns about the neck, two ears and a tail,
textured with fur fixed to the body (so it moves with it). Its keypoints are on the outline
(``nose``, ``leftear``, ``rightear``, ``tail_base``) and inside the body (``neck``, ``back``). A
keypoint is visible unless it is outside the frame, under an occluder or under an animal drawn
above its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io.annotations import FrameAnnotation, Instance, Keypoint

__all__ = ["FAMILIES", "PARTS", "SEED_SETS", "Scene", "make_scene"]

FAMILIES = ("walk", "fast", "uturn", "occluder", "exit", "camera", "touch", "cross")
"""Scenario families: one animal in the first six, two to four same-looking ones in the last two."""

SEED_SETS: dict[str, list[int]] = {"tuning": [0, 1, 2], "heldout": [100, 101, 102, 103, 104]}
"""Generator seeds: ``tuning`` may be looked at while changing the tracker, ``heldout`` only to report."""

# keypoints in body units: (forward, left) from the body centre, one unit = nose-to-tail-base length
PARTS: dict[str, tuple[float, float]] = {
    "nose": (0.5, 0.0),
    "leftear": (0.27, 0.19),
    "rightear": (0.27, -0.19),
    "neck": (0.2, 0.0),
    "back": (-0.1, 0.0),
    "tail_base": (-0.5, 0.0),
}
NECK_U = 0.2  # the head turns about this point of the body axis
HEAD_PARTS = ("nose", "leftear", "rightear")
MAX_TURN = math.radians(9.0)  # per frame, except during a U-turn
PATCH = 16  # backbone patch, in working pixels at the reference short side
REFERENCE_SHORT_SIDE = 384


@dataclass
class Scene:
    """A generated clip: frames (before encoding), ground truth and the factors it was drawn with."""

    family: str
    seed: int
    frames: np.ndarray  # (T, H, W, 3) uint8
    instance_names: list[str]
    part_names: list[str]
    xy: np.ndarray  # (T, I, P, 2) float32 image x/y
    visible: np.ndarray  # (T, I, P) bool
    masks: np.ndarray  # (T, I, H, W) bool, the visible part of each animal
    fps: float
    factors: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def keys(self) -> list[tuple[str, str]]:
        return [(i, p) for i in self.instance_names for p in self.part_names]

    def annotation(self, frame: int = 0, with_polygons: bool = False) -> FrameAnnotation:
        """The ground truth of ``frame`` as a manual seed (only points visible there)."""
        from ..io.mask_store import mask_to_polygon

        h, w = self.frames.shape[1:3]
        instances = []
        for i, name in enumerate(self.instance_names):
            kps = [
                Keypoint(p, float(self.xy[frame, i, j, 0]), float(self.xy[frame, i, j, 1]))
                for j, p in enumerate(self.part_names)
                if self.visible[frame, i, j]
            ]
            polygon = mask_to_polygon(self.masks[frame, i]) if with_polygons else None
            instances.append(Instance(name, kps, polygon=polygon, group_id=i))
        return FrameAnnotation(frame, h, w, instances, source="manual")

    def label_rows(self) -> list[tuple[int, str, str, str, str]]:
        """Rows of a labels CSV (frame, instance, keypoint, x, y); empty x/y where not visible."""
        rows = []
        for t in range(self.n_frames):
            for i, name in enumerate(self.instance_names):
                for j, part in enumerate(self.part_names):
                    if self.visible[t, i, j]:
                        rows.append((t, name, part, f"{self.xy[t, i, j, 0]:.3f}", f"{self.xy[t, i, j, 1]:.3f}"))
                    else:
                        rows.append((t, name, part, "", ""))
        return rows

    def write(self, path: str | Path) -> Path:
        """Encode as H.264 at the scene's drawn quality, with the 4:2:0 colour of ordinary cameras."""
        from ..io.video import write_video

        return write_video(path, self.frames, fps=self.fps, quality=self.factors["quality"], chroma="420")

    def write_labels(self, path: str | Path) -> Path:
        """Write the ground truth as a labels CSV (``frame,instance,keypoint,x,y``)."""
        import csv

        path = Path(path)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["frame", "instance", "keypoint", "x", "y"])
            writer.writerows(self.label_rows())
        return path


# ----------------------------------------------------------------------------- factors


def _draw_factors(family: str, rng: np.random.Generator) -> dict[str, Any]:
    h, w = [(384, 512), (480, 640), (432, 576)][rng.integers(3)]
    multi = family in ("touch", "cross")
    n_animals = int(rng.integers(2, 5)) if multi else 1
    patch_px = PATCH * min(h, w) / REFERENCE_SHORT_SIDE  # one patch at the reference working size
    max_len = min(h, w) / (1.2 + 0.45 * n_animals)
    length = float(np.clip(rng.uniform(3.0, 12.0) * patch_px, 3.0 * patch_px, max(3.0 * patch_px, max_len)))
    fast = family == "fast"
    f = {
        "family": family,
        "size": (h, w),
        "n_frames": int(rng.integers(60, 91)),
        "n_animals": n_animals,
        "length_px": length,
        "length_patches_at_384": length / patch_px,
        "body_texture": float(rng.uniform(0.0, 1.0)),
        "body_texture_scale": float(rng.uniform(1.0, 5.0)),
        "body_colour": rng.uniform([40, 30, 20], [200, 180, 170]).tolist(),
        "floor_like_body": bool(rng.random() < 0.5),
        "floor_texture": float(rng.uniform(0.0, 1.0)),
        "floor_texture_scale": float(rng.uniform(1.0, 8.0)),
        "max_speed": float(rng.uniform(12.0, 25.0) if fast else rng.uniform(2.0, 9.0)),
        "stop_prob": float(rng.uniform(0.2, 0.45) if fast else rng.uniform(0.0, 0.3)),
        "turniness": float(rng.uniform(0.005, 0.04)),
        "u_turns": int(rng.integers(1, 4)) if family == "uturn" else int(rng.random() < 0.2),
        "head_swing_deg": float(rng.uniform(0.0, 25.0)),
        "occluders": int(rng.integers(1, 4)) if family == "occluder" else int(rng.random() < 0.15),
        "exit": family == "exit",
        "dim_to": float(rng.uniform(0.45, 0.8) if family == "camera" else rng.uniform(0.75, 1.0)),
        "flicker": float(rng.uniform(0.0, 0.08) if family == "camera" else rng.uniform(0.0, 0.03)),
        "noise": float(rng.uniform(0.0, 7.0)),
        "blur": bool(rng.random() < (0.6 if fast else 0.2)),
        "quality": float(rng.uniform(5.5, 9.5)),
        "zoom": float(rng.uniform(0.1, 0.3) if family == "camera" else 0.0),
        "shake_px": float(rng.uniform(0.5, 3.0) if family == "camera" else 0.0),
        "crossing": family == "cross",
        "touching": family == "touch",
    }
    if f["floor_like_body"]:
        # the same fur-like texture and hue, only darker or lighter: the animal stays visible, as in any
        # video someone set out to track
        shade = rng.uniform(0.5, 0.7) if rng.random() < 0.5 else rng.uniform(1.4, 1.9)
        f["floor_colour"] = (np.asarray(f["body_colour"]) * shade).clip(10, 245).tolist()
        f["floor_texture"] = float(np.clip(f["body_texture"] + rng.uniform(-0.15, 0.15), 0.0, 1.0))
        f["floor_texture_scale"] = float(f["body_texture_scale"] * rng.uniform(0.8, 1.25))
    else:
        f["floor_colour"] = rng.uniform(20, 235, size=3).tolist()
    return f


# ----------------------------------------------------------------------------- textures


def _noise_texture(
    rng: np.random.Generator, shape: tuple[int, int], scale: float, strength: float, colour: list[float]
) -> np.ndarray:
    """Smooth random fur/floor pattern around ``colour``: (H, W, 3) float32."""
    import cv2

    base = rng.standard_normal((*shape, 1)).astype(np.float32)
    fine = cv2.GaussianBlur(base, (0, 0), scale)[..., None]
    coarse = cv2.GaussianBlur(base, (0, 0), 4 * scale)[..., None]
    pattern = fine / (fine.std() + 1e-6) + 0.6 * coarse / (coarse.std() + 1e-6)
    tint = 1.0 + 0.08 * rng.standard_normal(3).astype(np.float32)
    return np.asarray(colour, np.float32) * tint + 28.0 * strength * pattern


# ----------------------------------------------------------------------------- motion


@dataclass
class _Animal:
    x: np.ndarray  # (T,) centre
    y: np.ndarray
    heading: np.ndarray  # (T,) radians
    head: np.ndarray  # (T,) head turn about the neck, radians
    tail_wag: np.ndarray  # (T,)


def _speed_schedule(rng: np.random.Generator, n: int, f: dict) -> np.ndarray:
    speed = np.zeros(n)
    t = 0
    current = 0.0
    while t < n:
        seg = int(rng.integers(5, 25))
        target = 0.0 if rng.random() < f["stop_prob"] else float(rng.uniform(0.3, 1.0) * f["max_speed"])
        ramp = int(rng.integers(1, 3))  # sudden starts and stops
        for k in range(seg):
            if t >= n:
                break
            current += (target - current) * min(1.0, (k + 1) / ramp)
            speed[t] = current
            t += 1
    return speed


def _paths(rng: np.random.Generator, f: dict) -> list[_Animal]:
    n, (h, w), count, length = f["n_frames"], f["size"], f["n_animals"], f["length_px"]
    margin = 0.7 * length
    centres = _start_positions(rng, count, h, w, length)
    animals = []
    states = [[cx, cy, rng.uniform(-math.pi, math.pi)] for cx, cy in centres]
    speeds = [_speed_schedule(rng, n, f) for _ in range(count)]
    if f["crossing"]:
        # two animals head for each other's side so that one walks over the other
        states[0][0], states[0][1], states[0][2] = w * 0.2, h * 0.5, 0.0
        states[1][0], states[1][1], states[1][2] = w * 0.8, h * 0.5 + rng.uniform(-0.2, 0.2) * length, math.pi
        for k in (0, 1):
            speeds[k] = np.maximum(speeds[k], rng.uniform(1.5, 4.0))
    u_turn_at = (
        set(rng.choice(np.arange(8, max(9, n - 12)), size=f["u_turns"], replace=False).tolist())
        if f["u_turns"]
        else set()
    )
    exit_window = None
    if f["exit"]:
        away = int(rng.integers(20, 36))
        start = int(rng.integers(8, max(9, n - away - 30)))  # time left to come back in view
        exit_window = (start, start + away)
    exit_target: tuple[float, float] | None = None
    exit_speed = 0.0
    returning = False
    track = np.zeros((count, n, 3))
    turn_left = np.zeros(count, int)
    turn_rate = np.zeros(count)
    omega = np.zeros(count)
    for t in range(n):
        for a in range(count):
            x, y, hd = states[a]
            if exit_window is not None and a == 0 and t == exit_window[0]:
                # out through the nearest border, fully out of view well before the window ends; chosen
                # here rather than when steering because a U-turn under way skips the steering
                exit_target, distance = _outside_target(x, y, h, w, length)
                exit_speed = distance / (0.6 * (exit_window[1] - exit_window[0]))
            if exit_window is not None and a == 0 and t == exit_window[1]:
                # turn back towards the middle on the spot (out of view) and walk back in
                returning = True
                back = math.atan2(h / 2 - y, w / 2 - x)
                turn_left[a] = 6
                turn_rate[a] = ((back - hd + math.pi) % (2 * math.pi) - math.pi) / 6
            if t in u_turn_at and a == 0:
                turn_left[a] = int(rng.integers(8, 21))
                turn_rate[a] = math.pi / turn_left[a] * (1 if rng.random() < 0.5 else -1)
            if turn_left[a] > 0:
                hd += turn_rate[a]
                turn_left[a] -= 1
            else:
                omega[a] = 0.9 * omega[a] + rng.normal(0, f["turniness"])
                wanted = hd + omega[a]
                leaving = exit_window is not None and a == 0 and exit_window[0] <= t < exit_window[1]
                if leaving:
                    assert exit_target is not None  # set on the window's first frame
                    wanted = _steer_towards(x, y, wanted, *exit_target, 0.6)
                else:
                    wanted = _steer_inside(x, y, wanted, h, w, margin)
                    if exit_window is not None and a == 0 and t >= exit_window[1]:
                        wanted = _steer_towards(x, y, wanted, w / 2, h / 2, 0.35)
                if f["touching"] and count > 1:
                    wanted = _steer_to_company(a, states, wanted, length)
                # animals turn smoothly: at most MAX_TURN per frame outside of a U-turn
                hd += float(np.clip((wanted - hd + math.pi) % (2 * math.pi) - math.pi, -MAX_TURN, MAX_TURN))
            s = speeds[a][t]
            if exit_window is not None and a == 0 and exit_window[0] <= t < exit_window[1]:
                assert exit_target is not None
                there = math.hypot(exit_target[0] - x, exit_target[1] - y) <= exit_speed
                s = 0.0 if there else max(s, exit_speed)  # out of view: it waits there
            elif returning and a == 0:
                if margin <= x <= w - margin and margin <= y <= h - margin:
                    returning = False
                else:
                    s = max(s, exit_speed, 3.0) if turn_left[a] == 0 else 0.0
            nx, ny = x + s * math.cos(hd), y + s * math.sin(hd)
            if f["touching"] or (count > 1 and not f["crossing"]):
                nx, ny = _keep_apart(a, nx, ny, states, 0.45 * length)
            states[a] = [nx, ny, hd]
            track[a, t] = (nx, ny, hd)
    for a in range(count):
        swing = math.radians(f["head_swing_deg"])
        phase = rng.uniform(0, 2 * math.pi)
        period = rng.uniform(20, 60)
        head = swing * np.sin(2 * math.pi * np.arange(n) / period + phase)
        wag = 0.15 * np.sin(np.arange(n) / rng.uniform(3, 8) + phase)
        animals.append(_Animal(track[a, :, 0], track[a, :, 1], track[a, :, 2], head, wag))
    return animals


def _start_positions(rng, count, h, w, length) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for _ in range(count):
        for _attempt in range(200):
            cx, cy = rng.uniform(0.8 * length, w - 0.8 * length), rng.uniform(0.8 * length, h - 0.8 * length)
            if all(math.hypot(cx - ox, cy - oy) > 1.1 * length for ox, oy in out):
                break
        out.append((float(cx), float(cy)))
    return out


def _outside_target(x, y, h, w, length) -> tuple[tuple[float, float], float]:
    """A point beyond the border nearest to (x, y), and how far the animal walks to be out of view."""
    gaps = {"left": x, "right": w - x, "top": y, "bottom": h - y}
    side = min(gaps, key=gaps.__getitem__)
    beyond = 1.5 * length
    target = {"left": (-beyond, y), "right": (w + beyond, y), "top": (x, -beyond), "bottom": (x, h + beyond)}[side]
    return target, gaps[side] + beyond


def _steer_inside(x, y, hd, h, w, margin):
    ahead_x, ahead_y = x + margin * math.cos(hd), y + margin * math.sin(hd)
    if margin <= ahead_x <= w - margin and margin <= ahead_y <= h - margin:
        return hd
    return _steer_towards(x, y, hd, w / 2, h / 2, 0.3)


def _steer_towards(x, y, hd, tx, ty, gain):
    want = math.atan2(ty - y, tx - x)
    diff = (want - hd + math.pi) % (2 * math.pi) - math.pi
    return hd + gain * diff


def _steer_to_company(a, states, hd, length):
    x, y, _ = states[a]
    others = [(ox, oy) for k, (ox, oy, _) in enumerate(states) if k != a]
    ox, oy = min(others, key=lambda o: math.hypot(o[0] - x, o[1] - y))
    if math.hypot(ox - x, oy - y) > 1.2 * length:
        return _steer_towards(x, y, hd, ox, oy, 0.15)
    return hd


def _keep_apart(a, nx, ny, states, gap):
    for k, (ox, oy, _) in enumerate(states):
        if k == a:
            continue
        d = math.hypot(nx - ox, ny - oy)
        if 0 < d < gap:
            nx, ny = ox + (nx - ox) * gap / d, oy + (ny - oy) * gap / d
    return nx, ny


# ----------------------------------------------------------------------------- rendering


def _body_coords(xw, yw, cx, cy, heading, length):
    dx, dy = xw - cx, yw - cy
    c, s = math.cos(heading), math.sin(heading)
    u = (dx * c + dy * s) / length
    v = (dx * s - dy * c) / length  # positive to the animal's left (image y points down)
    return u, v


def _head_coords(u, v, head):
    c, s = math.cos(-head), math.sin(-head)
    du = u - NECK_U
    return NECK_U + du * c - v * s, du * s + v * c


def _shape(u, v, head, wag):
    """Region masks of one animal from body coordinates: torso, head, ears, tail."""
    torso = ((u + 0.1) / 0.4) ** 2 + (v / 0.2) ** 2 <= 1.0
    hu, hv = _head_coords(u, v, head)
    head_m = ((hu - 0.32) / 0.18) ** 2 + (hv / 0.13) ** 2 <= 1.0
    ears = ((hu - 0.27) ** 2 + (np.abs(hv) - 0.14) ** 2) <= 0.055**2
    tail_v = v - wag * (u + 0.5) ** 2 * 4
    tail = (u <= -0.45) & (u >= -0.95) & (np.abs(tail_v) <= 0.035)
    return torso, head_m, ears, tail


def _part_positions(animal: _Animal, t: float, length: float) -> dict[str, tuple[float, float]]:
    """World x/y of every keypoint at (possibly fractional) time ``t``."""
    cx, cy, hd, head = _interp(animal, t)
    c, s = math.cos(hd), math.sin(hd)
    out = {}
    for name, (u, v) in PARTS.items():
        if name in HEAD_PARTS:
            ch, sh = math.cos(head), math.sin(head)
            du = u - NECK_U
            u, v = NECK_U + du * ch - v * sh, du * sh + v * ch
        out[name] = (cx + length * (u * c + v * s), cy + length * (u * s - v * c))
    return out


def _interp(animal: _Animal, t: float):
    n = len(animal.x)
    t0 = int(np.clip(math.floor(t), 0, n - 1))
    t1 = min(t0 + 1, n - 1)
    a = float(np.clip(t - t0, 0.0, 1.0))
    dh = (animal.heading[t1] - animal.heading[t0] + math.pi) % (2 * math.pi) - math.pi
    return (
        (1 - a) * animal.x[t0] + a * animal.x[t1],
        (1 - a) * animal.y[t0] + a * animal.y[t1],
        animal.heading[t0] + a * dh,
        (1 - a) * animal.head[t0] + a * animal.head[t1],
    )


@dataclass
class _Occluder:
    x0: float
    y0: float
    angle: float
    half_width: float
    frames: tuple[int, int]
    colour: float

    def covers(self, xw, yw):
        nx, ny = -math.sin(self.angle), math.cos(self.angle)
        return np.abs((xw - self.x0) * nx + (yw - self.y0) * ny) <= self.half_width


def _occluders(rng, f, animals) -> list[_Occluder]:
    out = []
    n = f["n_frames"]
    for _ in range(f["occluders"]):
        a = animals[int(rng.integers(len(animals)))]
        first = int(rng.integers(3, max(4, n - 4)))
        last = min(n - 1, first + int(rng.integers(2, 31)) - 1)
        mid = min(n - 1, (first + last) // 2)
        out.append(
            _Occluder(
                float(a.x[mid]),
                float(a.y[mid]),
                float(rng.uniform(0, math.pi)),
                float(rng.uniform(0.12, 0.35) * f["length_px"]),
                (first, last),
                float(rng.uniform(40, 220)),
            )
        )
    return out


class _Camera:
    """World -> image similarity per frame: slow zoom about the centre plus shake."""

    def __init__(self, rng, f):
        n, (h, w) = f["n_frames"], f["size"]
        self.centre = np.array([w / 2, h / 2])
        self.zoom = 1.0 + f["zoom"] * np.linspace(0, 1, n)
        shake = rng.normal(0, f["shake_px"], size=(n, 2)) if f["shake_px"] else np.zeros((n, 2))
        self.shift = shake
        self.roll = rng.normal(0, 0.004, size=n) if f["shake_px"] else np.zeros(n)

    def to_image(self, t: int, x, y):
        z, r = self.zoom[t], self.roll[t]
        c, s = math.cos(r), math.sin(r)
        dx, dy = np.asarray(x) - self.centre[0], np.asarray(y) - self.centre[1]
        return (
            self.centre[0] + z * (c * dx - s * dy) + self.shift[t, 0],
            self.centre[1] + z * (s * dx + c * dy) + self.shift[t, 1],
        )

    def to_world(self, t: int, x, y):
        z, r = self.zoom[t], self.roll[t]
        c, s = math.cos(-r), math.sin(-r)
        dx = (np.asarray(x) - self.centre[0] - self.shift[t, 0]) / z
        dy = (np.asarray(y) - self.centre[1] - self.shift[t, 1]) / z
        return self.centre[0] + c * dx - s * dy, self.centre[1] + s * dx + c * dy


def make_scene(family: str, seed: int, **fixed: Any) -> Scene:
    """Generate the scene of ``family`` for ``seed`` (the same pair always gives the same scene).

    Keyword arguments fix factors instead of drawing them (``n_frames=20, occluders=0``...),
    for tests that need one situation; the names are the keys of :attr:`Scene.factors`.
    """
    import cv2

    if family not in FAMILIES:
        raise ValueError(f"unknown scenario family {family!r}; choose one of {FAMILIES}")
    rng = np.random.default_rng([FAMILIES.index(family), seed])
    f = _draw_factors(family, rng)
    unknown = set(fixed) - set(f)
    if unknown:
        raise ValueError(f"unknown scene factors {sorted(unknown)}; choose from {sorted(f)}")
    f.update(fixed)
    n, (h, w), length = f["n_frames"], f["size"], f["length_px"]
    animals = _paths(rng, f)
    occluders = _occluders(rng, f, animals)
    camera = _Camera(rng, f)
    pad = int(0.5 * max(h, w))
    floor = _noise_texture(
        rng, (h + 2 * pad, w + 2 * pad), f["floor_texture_scale"], f["floor_texture"], f["floor_colour"]
    )
    tex_size = int(2.2 * length) + 8
    fur = _noise_texture(rng, (tex_size, tex_size), f["body_texture_scale"], f["body_texture"], f["body_colour"])
    ear_colour = np.asarray(f["body_colour"], np.float32) * rng.uniform(0.55, 0.8)
    tail_colour = np.asarray(f["body_colour"], np.float32) * rng.uniform(0.6, 0.9)
    gain = f["dim_to"] + (1 - f["dim_to"]) * np.cos(np.linspace(0, math.pi / 2, n)) ** 2
    gain = gain * (1 + f["flicker"] * rng.standard_normal(n))

    names = [f"animal{i + 1}" for i in range(len(animals))]
    parts = list(PARTS)
    frames = np.zeros((n, h, w, 3), np.uint8)
    xy = np.zeros((n, len(animals), len(parts), 2), np.float32)
    visible = np.zeros((n, len(animals), len(parts)), bool)
    masks = np.zeros((n, len(animals), h, w), bool)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    sub_times = (-0.3, 0.0, 0.3) if f["blur"] else (0.0,)

    for t in range(n):
        xw, yw = camera.to_world(t, xs, ys)
        xw, yw = xw.astype(np.float32), yw.astype(np.float32)
        acc = np.zeros((h, w, 3), np.float32)
        for dt in sub_times:
            img = cv2.remap(floor, xw + pad, yw + pad, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            for a, animal in enumerate(animals):  # later animals are drawn above earlier ones
                cx, cy, hd, head = _interp(animal, t + dt)
                u, v = _body_coords(xw, yw, cx, cy, hd, length)
                torso, head_m, ears, tail = _shape(u, v, head, animal.tail_wag[t])
                body = torso | head_m
                # the fur is fixed to the body part it grows on: the head's turns with the head
                hu, hv = _head_coords(u, v, head)
                on_head = head_m & ~torso | ears
                fu = np.where(on_head, hu, u)
                fv = np.where(on_head, hv, v)
                tu = (fu * length + tex_size / 2).astype(np.float32)
                tv = (fv * length + tex_size / 2).astype(np.float32)
                coat = cv2.remap(fur, tu, tv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
                img[body] = coat[body]
                img[tail & ~body] = tail_colour
                img[ears] = 0.5 * ear_colour + 0.5 * coat[ears] * ear_colour / np.asarray(f["body_colour"])
                if dt == 0.0:
                    masks[t, a] = body | ears | tail
                    masks[t, :a] &= ~masks[t, a]
            for occ in occluders:
                if occ.frames[0] <= t <= occ.frames[1]:
                    cover = occ.covers(xw, yw)
                    img[cover] = occ.colour
                    if dt == 0.0:
                        masks[t] &= ~cover
            acc += img
        img = acc / len(sub_times)
        img = cv2.GaussianBlur(img, (0, 0), 0.6) * gain[t]
        img += rng.normal(0, f["noise"], img.shape).astype(np.float32)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)

        for a, animal in enumerate(animals):
            for j, (px, py) in enumerate(_part_positions(animal, t, length).values()):
                ix, iy = camera.to_image(t, px, py)
                xy[t, a, j] = (ix, iy)
                inside = 0 <= ix <= w - 1 and 0 <= iy <= h - 1
                covered = any(o.frames[0] <= t <= o.frames[1] and bool(o.covers(px, py)) for o in occluders)
                for b in range(a + 1, len(animals)):  # an animal drawn above hides this part
                    cx, cy, hd, head = _interp(animals[b], t)
                    u, v = _body_coords(np.float32(px), np.float32(py), cx, cy, hd, length)
                    if any(bool(m) for m in _shape(u, v, head, animals[b].tail_wag[t])):
                        covered = True
                visible[t, a, j] = inside and not covered
    return Scene(
        family,
        seed,
        frames,
        names,
        parts,
        xy,
        visible,
        masks,
        fps=30.0,
        factors={k: (list(v) if isinstance(v, tuple) else v) for k, v in f.items()},
    )
