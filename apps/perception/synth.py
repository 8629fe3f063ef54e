"""Synthetic dash-camera road scenes with exact box labels.

A pinhole camera 1.5 m above a flat road looks down the road; every object lives in world
coordinates (X lateral, Z forward, metres) and is projected, so scale and image row follow depth:
``u = cx + f X / Z``, ``v = v_horizon + f (h_cam - elevation) / Z``. Objects are drawn far to near
(painter's order), which gives occlusion; a per-pixel instance map measures how much of each object
stays visible. Objects mostly hidden, cut by the frame edge to a sliver, or tiny are flagged
``ignore`` (written as ``iscrowd=1`` in COCO json, left out of YOLO txt), as KITTI/COCO annotators do.

Conditions: day / dusk / night (lights stay bright at night), clear / rain / fog, sun glare, motion
blur, sensor noise and JPEG artefacts. ``render_drive`` renders a continuous drive (objects keep their
identity and move) for tracking and the demo.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field

import cv2
import numpy as np

from .classes import CLASSES

CAM_HEIGHT = 1.5
LANE_W = 3.5
ROAD_HALF = 7.0
MIN_VISIBLE = 0.3  # visible fraction below which a label becomes an ignore region
MIN_BOX_H = 6.0  # pixels; smaller labelled objects become ignore regions


@dataclass
class Obj:
    """One world object. ``cls`` is a class id, or -1 for unlabelled scenery (trees, buildings, poles)."""

    cls: int
    kind: str
    x: float
    z: float
    w: float
    h: float
    elev: float = 0.0
    vz: float = 0.0  # m/s relative to the ego car (negative = approaching)
    vx: float = 0.0
    style: dict = field(default_factory=dict)
    track_id: int = -1


@dataclass
class Camera:
    width: int = 640
    height: int = 480
    f: float = 0.0
    horizon: float = 0.0

    def __post_init__(self):
        self.f = self.f or 0.85 * self.width
        self.horizon = self.horizon or 0.42 * self.height

    def project(self, x: float, z: float, y_up: float) -> tuple[float, float]:
        """World (x, z, height above road) -> pixel (u, v)."""
        return self.width / 2 + self.f * x / z, self.horizon + self.f * (CAM_HEIGHT - y_up) / z


# ------------------------------------------------------------------------------------------------
# Object sprites: each draws into a local patch of the object's projected size and returns
# (rgb float32 HxWx3 in 0..1, alpha HxW, emissive rgb HxWx3) so night scenes can keep lights bright.


def _col(c) -> tuple[float, float, float]:
    return (float(c[0]), float(c[1]), float(c[2]))


def _sprite_car(w: int, h: int, st: dict):
    rgb = np.zeros((h, w, 3), np.float32)
    a = np.zeros((h, w), np.float32)
    em = np.zeros((h, w, 3), np.float32)
    body = _col(st["color"])
    front = st.get("front", False)
    cab_top, body_top = 0, int(round(h * 0.42))
    inset = int(round(w * 0.14))
    cab = np.array([[inset, cab_top], [w - 1 - inset, cab_top], [w - 1, body_top], [0, body_top]], np.int32)
    cv2.fillConvexPoly(rgb, cab, body)
    cv2.fillConvexPoly(a, cab, 1.0)
    win_in = max(1, int(round(w * 0.06)))
    win = np.array(
        [
            [inset + win_in, cab_top + max(1, h // 14)],
            [w - 1 - inset - win_in, cab_top + max(1, h // 14)],
            [w - 1 - win_in, body_top - 1],
            [win_in, body_top - 1],
        ],
        np.int32,
    )
    cv2.fillConvexPoly(rgb, win, (0.12, 0.14, 0.17) if not front else (0.2, 0.24, 0.28))
    wheel_h = max(1, int(round(h * 0.16)))
    rgb[body_top : h - wheel_h // 2] = body
    a[body_top:h] = 1.0
    ww = max(1, int(round(w * 0.16)))
    rgb[h - wheel_h :, :ww] = 0.05
    rgb[h - wheel_h :, w - ww :] = 0.05
    rgb[h - wheel_h :, ww : w - ww] = 0.0
    a[h - wheel_h :, ww : w - ww] = 0.0 if h > 6 else 1.0
    ly = body_top + max(1, int(round(h * 0.1)))
    lh = max(1, int(round(h * 0.1)))
    lw = max(1, int(round(w * 0.16)))
    light = (1.0, 0.95, 0.8) if front else (0.85, 0.05, 0.05)
    for x0 in (max(0, int(w * 0.04)), w - lw - max(0, int(w * 0.04))):
        rgb[ly : ly + lh, x0 : x0 + lw] = light
        em[ly : ly + lh, x0 : x0 + lw] = light
    pw, ph = max(1, w // 5), max(1, h // 12)
    py = ly + lh + max(0, h // 20)
    rgb[py : py + ph, w // 2 - pw // 2 : w // 2 - pw // 2 + pw] = (0.92, 0.92, 0.88)
    rgb[h - wheel_h - max(1, h // 16) : h - wheel_h, :] *= 0.6
    return rgb, a, em


def _sprite_truck(w: int, h: int, st: dict):
    rgb = np.zeros((h, w, 3), np.float32)
    a = np.ones((h, w), np.float32)
    em = np.zeros((h, w, 3), np.float32)
    body = _col(st["color"])
    wheel_h = max(1, int(round(h * 0.1)))
    rgb[:] = body
    if st.get("bus", False):
        wy0, wy1 = int(h * 0.12), int(h * 0.45)
        rgb[wy0:wy1, int(w * 0.06) : w - int(w * 0.06)] = (0.1, 0.12, 0.15)
        rgb[int(h * 0.05) : int(h * 0.1), int(w * 0.25) : int(w * 0.75)] = (0.9, 0.6, 0.1)
    else:
        rgb[:, w // 2 - max(0, w // 60) : w // 2 + max(1, w // 60)] *= 0.7  # rear door seam
        rgb[int(h * 0.02) : int(h * 0.06)] *= 0.8
    ww = max(1, int(round(w * 0.14)))
    rgb[h - wheel_h :] = 0.03
    a[h - wheel_h :, ww : w - ww] = 0.0 if h > 8 else 1.0
    rgb[h - wheel_h - max(1, h // 12) : h - wheel_h] = (0.25, 0.25, 0.25)
    ly, lh, lw = int(h * 0.72), max(1, int(h * 0.06)), max(1, int(w * 0.1))
    for x0 in (int(w * 0.04), w - lw - int(w * 0.04)):
        rgb[ly : ly + lh, x0 : x0 + lw] = (0.9, 0.08, 0.05)
        em[ly : ly + lh, x0 : x0 + lw] = (0.9, 0.08, 0.05)
    return rgb, a, em


def _sprite_person(w: int, h: int, st: dict, bike: bool = False):
    rgb = np.zeros((h, w, 3), np.float32)
    a = np.zeros((h, w), np.float32)
    em = np.zeros((h, w, 3), np.float32)
    skin, shirt, pants = _col(st["skin"]), _col(st["shirt"]), _col(st["pants"])
    cx = (w - 1) / 2
    if bike:
        r = max(1, int(round(h * 0.17)))
        for wx in (r, w - 1 - r):
            cv2.circle(rgb, (int(wx), h - 1 - r), r, (0.08, 0.08, 0.08), max(1, r // 3), cv2.LINE_AA)
            cv2.circle(a, (int(wx), h - 1 - r), r, 1.0, max(1, r // 3), cv2.LINE_AA)
        frame_pts = np.array(
            [
                [r, h - 1 - r],
                [int(cx), h - 1 - r],
                [w - 1 - r, h - 1 - r],
                [int(cx + w * 0.1), int(h * 0.55)],
            ],
            np.int32,
        )
        cv2.polylines(rgb, [frame_pts], True, _col(st["bike"]), max(1, h // 40), cv2.LINE_AA)
        cv2.polylines(a, [frame_pts], True, 1.0, max(1, h // 40), cv2.LINE_AA)
        body_w = max(1, int(round(w * 0.22)))
        head_r = max(1, int(round(h * 0.075)))
        hx = int(cx + w * 0.08)
        cv2.circle(rgb, (hx, head_r), head_r, skin, -1, cv2.LINE_AA)
        cv2.circle(a, (hx, head_r), head_r, 1.0, -1, cv2.LINE_AA)
        torso = np.array(
            [
                [hx - body_w // 2, 2 * head_r],
                [hx + body_w // 2, 2 * head_r],
                [int(cx) + body_w // 2, int(h * 0.55)],
                [int(cx) - body_w // 2, int(h * 0.55)],
            ],
            np.int32,
        )
        cv2.fillConvexPoly(rgb, torso, shirt)
        cv2.fillConvexPoly(a, torso, 1.0)
        leg = np.array(
            [
                [int(cx) - body_w // 3, int(h * 0.55)],
                [int(cx) + body_w // 3, int(h * 0.55)],
                [int(cx) + body_w // 4, h - 1 - r],
                [int(cx) - body_w // 4, h - 1 - r],
            ],
            np.int32,
        )
        cv2.fillConvexPoly(rgb, leg, pants)
        cv2.fillConvexPoly(a, leg, 1.0)
        return rgb, a, em
    head_r = max(1, int(round(min(w * 0.3, h * 0.07))))
    cv2.circle(rgb, (int(round(cx)), head_r), head_r, skin, -1, cv2.LINE_AA)
    cv2.circle(a, (int(round(cx)), head_r), head_r, 1.0, -1, cv2.LINE_AA)
    t0, t1 = 2 * head_r, int(h * 0.55)
    tw = max(1, int(round(w * 0.55)))
    x0 = int(round(cx - tw / 2))
    rgb[t0:t1, x0 : x0 + tw] = shirt
    a[t0:t1, x0 : x0 + tw] = 1.0
    # arms reach the box edges so the label is tight around the silhouette
    aw = max(1, (w - tw) // 2)
    rgb[t0 + 1 : int(h * 0.5), :aw] = shirt
    a[t0 + 1 : int(h * 0.5), :aw] = 1.0
    rgb[t0 + 1 : int(h * 0.5), w - aw :] = shirt
    a[t0 + 1 : int(h * 0.5), w - aw :] = 1.0
    stride = st.get("stride", 0.0)
    lw = max(1, int(round(tw * 0.42)))
    for side in (-1, 1):
        top_x = cx + side * tw * 0.25
        bot_x = top_x + side * stride * w * 0.25
        leg = np.array(
            [[top_x - lw / 2, t1], [top_x + lw / 2, t1], [bot_x + lw / 2, h - 1], [bot_x - lw / 2, h - 1]]
        )
        leg[:, 0] = np.clip(leg[:, 0], 0, w - 1)
        cv2.fillConvexPoly(rgb, leg.astype(np.int32), pants)
        cv2.fillConvexPoly(a, leg.astype(np.int32), 1.0)
    return rgb, a, em


def _sprite_light(w: int, h: int, st: dict):
    rgb = np.full((h, w, 3), 0.08, np.float32)
    a = np.ones((h, w), np.float32)
    em = np.zeros((h, w, 3), np.float32)
    lit = st["lit"]
    cols = [(1.0, 0.1, 0.05), (1.0, 0.75, 0.05), (0.1, 1.0, 0.4)]
    r = max(1, int(round(min(w * 0.32, h / 7.5))))
    for i in range(3):
        cy = int(round((i + 0.5) * h / 3))
        c = cols[i] if i == lit else tuple(0.25 * v for v in cols[i])
        cv2.circle(rgb, (w // 2, cy), r, c, -1, cv2.LINE_AA)
        if i == lit:
            cv2.circle(em, (w // 2, cy), r, cols[i], -1, cv2.LINE_AA)
    return rgb, a, em


def _sprite_sign(w: int, h: int, st: dict):
    rgb = np.zeros((h, w, 3), np.float32)
    a = np.zeros((h, w), np.float32)
    em = np.zeros((h, w, 3), np.float32)
    shape = st["shape"]
    c = ((w - 1) / 2, (h - 1) / 2)
    bw = max(1, int(round(w * 0.12)))
    if shape == "circle":
        axes = (max(1, int(round(w / 2))), max(1, int(round(h / 2))))
        cv2.ellipse(
            rgb, (int(round(c[0])), int(round(c[1]))), axes, 0, 0, 360, (0.85, 0.08, 0.08), -1, cv2.LINE_AA
        )
        cv2.ellipse(a, (int(round(c[0])), int(round(c[1]))), axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
        inner = (max(1, axes[0] - bw), max(1, axes[1] - bw))
        cv2.ellipse(
            rgb, (int(round(c[0])), int(round(c[1]))), inner, 0, 0, 360, (0.95, 0.95, 0.95), -1, cv2.LINE_AA
        )
        if w > 10:  # two dark strokes stand in for the speed-limit digits
            d0, d1 = int(h * 0.35), int(h * 0.65)
            for xa in (int(w * 0.3), int(w * 0.55)):
                rgb[d0:d1, xa : xa + max(1, w // 10)] = 0.05
    elif shape == "triangle":
        pts = np.array([[c[0], 0], [w - 1, h - 1], [0, h - 1]], np.int32)
        cv2.fillConvexPoly(rgb, pts, (0.85, 0.08, 0.08))
        cv2.fillConvexPoly(a, pts, 1.0)
        pin = np.array([[c[0], 2.2 * bw], [w - 1 - 1.8 * bw, h - 1 - bw], [1.8 * bw, h - 1 - bw]], np.int32)
        cv2.fillConvexPoly(rgb, pin, (0.95, 0.95, 0.95))
    elif shape == "octagon":
        ang = np.arange(8) * np.pi / 4 + np.pi / 8
        pts = np.stack(
            [
                c[0] + w / 2 / math.cos(np.pi / 8) * np.cos(ang),
                c[1] + h / 2 / math.cos(np.pi / 8) * np.sin(ang),
            ],
            1,
        )
        pts = np.clip(pts, 0, [w - 1, h - 1]).astype(np.int32)
        cv2.fillConvexPoly(rgb, pts, (0.8, 0.05, 0.05))
        cv2.fillConvexPoly(a, pts, 1.0)
        rgb[int(h * 0.45) : int(h * 0.55), int(w * 0.2) : int(w * 0.8)] = 0.95
    else:  # blue square information sign
        rgb[:] = (0.08, 0.25, 0.75)
        a[:] = 1.0
        rgb[bw : h - bw, bw : w - bw] = (0.12, 0.35, 0.85)
        rgb[int(h * 0.3) : int(h * 0.7), int(w * 0.42) : int(w * 0.58)] = 0.95
    return rgb, a, em


def _sprite_scenery(w: int, h: int, st: dict):
    rgb = np.zeros((h, w, 3), np.float32)
    a = np.ones((h, w), np.float32)
    em = np.zeros((h, w, 3), np.float32)
    kind = st["kind"]
    if kind == "building":
        rgb[:] = _col(st["color"])
        nx, ny = st["grid"]
        for i in range(ny):
            for j in range(nx):
                y0, y1 = int((i + 0.25) * h / ny), int((i + 0.7) * h / ny)
                x0, x1 = int((j + 0.25) * w / nx), int((j + 0.75) * w / nx)
                lit = st["lit_seed"] * (i * 7 + j * 13) % 1.0 > 0.6
                rgb[y0:y1, x0:x1] = (0.85, 0.75, 0.45) if lit else (0.18, 0.22, 0.28)
                if lit:
                    em[y0:y1, x0:x1] = (0.5, 0.42, 0.2)
    elif kind == "tree":
        a[:] = 0
        tw = max(1, w // 6)
        rgb[int(h * 0.6) :, w // 2 - tw // 2 : w // 2 - tw // 2 + tw] = (0.3, 0.2, 0.1)
        a[int(h * 0.6) :, w // 2 - tw // 2 : w // 2 - tw // 2 + tw] = 1
        cv2.ellipse(
            rgb,
            (w // 2, int(h * 0.35)),
            (max(1, w // 2), max(1, int(h * 0.35))),
            0,
            0,
            360,
            _col(st["color"]),
            -1,
            cv2.LINE_AA,
        )
        cv2.ellipse(a, (w // 2, int(h * 0.35)), (max(1, w // 2), max(1, int(h * 0.35))), 0, 0, 360, 1.0, -1)
    elif kind == "pole":
        rgb[:] = (0.35, 0.35, 0.37)
        if st.get("lamp") and h > 10:
            rgb[: max(1, h // 40)] = (1.0, 0.95, 0.7)
            em[: max(1, h // 40)] = (1.0, 0.9, 0.6)
    return rgb, a, em


SPRITES = {
    "car": _sprite_car,
    "truck": _sprite_truck,
    "pedestrian": _sprite_person,
    "cyclist": lambda w, h, st: _sprite_person(w, h, st, bike=True),
    "light": _sprite_light,
    "sign": _sprite_sign,
    "scenery": _sprite_scenery,
}


# ------------------------------------------------------------------------------------------------
# Scene content


def _rand_color(rng: np.random.Generator) -> tuple[float, float, float]:
    palette = [
        (0.9, 0.9, 0.9),
        (0.1, 0.1, 0.1),
        (0.55, 0.55, 0.58),
        (0.7, 0.1, 0.1),
        (0.1, 0.2, 0.6),
        (0.75, 0.75, 0.78),
        (0.2, 0.35, 0.2),
        (0.85, 0.6, 0.1),
        (0.35, 0.2, 0.1),
    ]
    c = np.array(palette[rng.integers(len(palette))]) + rng.normal(0, 0.04, 3)
    return tuple(np.clip(c, 0, 1).tolist())


def make_object(rng: np.random.Generator, cls: int, z: float, ego_speed: float = 0.0) -> Obj:
    """A new labelled object of class ``cls`` at depth ``z`` with a plausible lateral position."""
    name = CLASSES[cls]
    side = rng.choice([-1.0, 1.0])
    if name == "car":
        lane = rng.choice([-1.5, -0.5, 0.5, 1.5])
        front = lane < 0 and rng.random() < 0.7
        o = Obj(
            cls,
            "car",
            lane * LANE_W + rng.normal(0, 0.25),
            z,
            rng.uniform(1.65, 1.95),
            rng.uniform(1.35, 1.6),
            style=dict(color=_rand_color(rng), front=bool(front)),
        )
        o.vz = -(ego_speed + rng.uniform(8, 14)) if front else rng.uniform(-4, 4)
    elif name == "truck/bus":
        lane = rng.choice([-1.5, -0.5, 0.5, 1.5])
        bus = rng.random() < 0.4
        o = Obj(
            cls,
            "truck",
            lane * LANE_W + rng.normal(0, 0.2),
            z,
            rng.uniform(2.3, 2.6),
            rng.uniform(2.8, 3.6),
            style=dict(color=_rand_color(rng), bus=bool(bus)),
        )
        o.vz = -(ego_speed + rng.uniform(6, 12)) if lane < 0 else rng.uniform(-3, 3)
    elif name == "pedestrian":
        x = side * rng.uniform(7.3, 10.0) if rng.random() < 0.8 else rng.uniform(-6, 6)
        o = Obj(
            cls,
            "pedestrian",
            x,
            z,
            rng.uniform(0.5, 0.7),
            rng.uniform(1.5, 1.9),
            style=dict(
                skin=tuple(np.clip(rng.uniform([0.35, 0.22, 0.15], [0.95, 0.75, 0.6]), 0, 1).tolist()),
                shirt=_rand_color(rng),
                pants=_rand_color(rng),
                stride=float(rng.uniform(-1, 1)),
            ),
        )
        o.vz, o.vx = -ego_speed + rng.uniform(-1.5, 1.5), (rng.uniform(-1.2, 1.2) if abs(x) < 7 else 0.0)
    elif name == "cyclist":
        o = Obj(
            cls,
            "cyclist",
            side * rng.uniform(4.6, 6.6),
            z,
            rng.uniform(0.6, 0.8),
            rng.uniform(1.6, 1.85),
            style=dict(
                skin=tuple(np.clip(rng.uniform([0.35, 0.22, 0.15], [0.95, 0.75, 0.6]), 0, 1).tolist()),
                shirt=_rand_color(rng),
                pants=_rand_color(rng),
                bike=_rand_color(rng),
            ),
        )
        o.vz = rng.uniform(-4, 3) if side > 0 else -(ego_speed + rng.uniform(3, 6))
    elif name == "traffic light":
        o = Obj(
            cls,
            "light",
            side * rng.uniform(4.0, 8.0),
            z,
            rng.uniform(0.32, 0.42),
            rng.uniform(0.9, 1.1),
            elev=rng.uniform(4.2, 5.5),
            style=dict(lit=int(rng.integers(3))),
        )
        o.vz = -ego_speed
    else:
        o = Obj(
            cls,
            "sign",
            side * rng.uniform(7.2, 9.0),
            z,
            0.0,
            0.0,
            elev=rng.uniform(1.9, 2.6),
            style=dict(
                shape=str(rng.choice(["circle", "triangle", "octagon", "square"])),
                text=str(rng.choice(["30", "50", "70", "90"])),
            ),
        )
        s = rng.uniform(0.6, 0.85)
        o.w, o.h = s, s * (0.9 if o.style["shape"] == "triangle" else 1.0)
        o.vz = -ego_speed
    return o


# Depth range per class chosen so that the far end is still a few pixels tall at 640 px width.
Z_RANGE = {0: (4.5, 75.0), 1: (6.0, 85.0), 2: (4.0, 55.0), 3: (4.5, 55.0), 4: (7.0, 60.0), 5: (5.0, 55.0)}
CLASS_FREQ = np.array([0.34, 0.12, 0.18, 0.1, 0.12, 0.14])


def make_scenery(rng: np.random.Generator, z: float) -> list[Obj]:
    """Buildings, trees and poles beside the road at depth ``z`` (unlabelled)."""
    out = []
    side = rng.choice([-1.0, 1.0])
    r = rng.random()
    if r < 0.45:
        w = rng.uniform(8, 20)
        out.append(
            Obj(
                -1,
                "scenery",
                side * (rng.uniform(13, 18) + w / 2),
                z,
                w,
                rng.uniform(6, 25),
                style=dict(
                    kind="building",
                    color=tuple((rng.uniform(0.3, 0.75) * np.array([1, 0.95, 0.9])).tolist()),
                    grid=(int(rng.integers(2, 6)), int(rng.integers(2, 7))),
                    lit_seed=float(rng.random()),
                ),
            )
        )
    elif r < 0.8:
        out.append(
            Obj(
                -1,
                "scenery",
                side * rng.uniform(10, 15),
                z,
                rng.uniform(2.5, 5),
                rng.uniform(4, 9),
                style=dict(kind="tree", color=(0.1 + 0.1 * rng.random(), 0.3 + 0.2 * rng.random(), 0.1)),
            )
        )
    else:
        out.append(
            Obj(
                -1,
                "scenery",
                side * rng.uniform(7.5, 9.5),
                z,
                0.18,
                rng.uniform(6, 8),
                style=dict(kind="pole", lamp=True),
            )
        )
    return out


@dataclass
class Conditions:
    time: str = "day"  # day | dusk | night
    weather: str = "clear"  # clear | rain | fog
    glare: bool = False
    blur: float = 0.0  # motion blur length, pixels
    noise: float = 0.01  # Gaussian sensor noise sigma (0..1 scale)
    jpeg: int = 0  # JPEG quality, 0 = no recompression
    road_tone: float = 0.35
    sky: tuple = (0.55, 0.7, 0.9)

    @staticmethod
    def sample(rng: np.random.Generator) -> Conditions:
        t = rng.choice(["day", "dusk", "night"], p=[0.6, 0.2, 0.2])
        wth = rng.choice(["clear", "rain", "fog"], p=[0.6, 0.2, 0.2])
        return Conditions(
            time=str(t),
            weather=str(wth),
            glare=bool(t != "night" and rng.random() < 0.2),
            blur=float(rng.uniform(3, 9)) if rng.random() < 0.25 else 0.0,
            noise=float(rng.uniform(0.005, 0.03 if t != "night" else 0.06)),
            jpeg=int(rng.integers(35, 95)) if rng.random() < 0.7 else 0,
            road_tone=float(rng.uniform(0.25, 0.45)),
            sky=tuple(np.clip(np.array([0.55, 0.7, 0.92]) + rng.normal(0, 0.05, 3), 0, 1).tolist()),
        )


# ------------------------------------------------------------------------------------------------
# Rendering


def _background(cam: Camera, cond: Conditions, lane_phase: float) -> np.ndarray:
    W, H = cam.width, cam.height
    img = np.empty((H, W, 3), np.float32)
    hz = int(round(cam.horizon))
    t = np.linspace(0, 1, max(hz, 1), dtype=np.float32)[:, None]
    sky_top = np.array(cond.sky, np.float32) * 0.8
    sky_bot = np.array([0.85, 0.88, 0.92], np.float32)
    if cond.time == "dusk":
        sky_bot = np.array([0.95, 0.6, 0.35], np.float32)
    img[:hz] = (sky_top * (1 - t) + sky_bot * t)[:, None, :]
    img[hz:] = (0.32, 0.42, 0.25)  # verge / grass
    g = cond.road_tone

    def poly(x_left, x_right, z_near, z_far, color):
        pts = [
            cam.project(x_left, z_near, 0),
            cam.project(x_right, z_near, 0),
            cam.project(x_right, z_far, 0),
            cam.project(x_left, z_far, 0),
        ]
        cv2.fillConvexPoly(img, np.round(np.array(pts) * 4).astype(np.int32), color, cv2.LINE_AA, 2)

    poly(-ROAD_HALF - 3.0, ROAD_HALF + 3.0, 1.0, 400.0, (0.55, 0.55, 0.53))  # sidewalks
    poly(-ROAD_HALF, ROAD_HALF, 1.0, 400.0, (g, g, g * 1.02))  # asphalt
    # row-wise darkening towards the horizon gives the road some depth shading
    rows = np.arange(hz, H, dtype=np.float32)
    shade = 0.9 + 0.15 * (rows - hz) / max(H - hz, 1)
    img[hz:] *= shade[:, None, None]
    for xl in (-ROAD_HALF + 0.3, ROAD_HALF - 0.45):
        poly(xl, xl + 0.15, 1.0, 400.0, (0.9, 0.9, 0.85))  # edge lines
    dash, gap = 3.0, 9.0
    for xl in (-LANE_W, 0.0, LANE_W):
        color = (0.95, 0.8, 0.2) if xl == 0.0 else (0.92, 0.92, 0.9)
        k0 = -lane_phase % (dash + gap)
        z = 1.0 + k0
        while z < 120:
            poly(xl - 0.07, xl + 0.07, z, z + dash, color)
            z += dash + gap
    return img


def _composite(img, idmap, emis, spr, x0, y0, oid):
    rgb, a, em = spr
    h, w = a.shape
    H, W = idmap.shape
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
    if xa >= xb or ya >= yb:
        return
    sa = a[ya - y0 : yb - y0, xa - x0 : xb - x0, None]
    img[ya:yb, xa:xb] = img[ya:yb, xa:xb] * (1 - sa) + rgb[ya - y0 : yb - y0, xa - x0 : xb - x0] * sa
    emis[ya:yb, xa:xb] = emis[ya:yb, xa:xb] * (1 - sa) + em[ya - y0 : yb - y0, xa - x0 : xb - x0] * sa
    m = sa[..., 0] > 0.5
    idmap[ya:yb, xa:xb][m] = oid


def render_scene(
    objs: list[Obj], cam: Camera, cond: Conditions, rng: np.random.Generator, lane_phase: float = 0.0
) -> tuple[np.ndarray, list[dict]]:
    """Render ``objs`` with the camera and conditions.

    Returns (image uint8 HxWx3 RGB, annotations). Each annotation: ``bbox`` [x1, y1, x2, y2] in pixels
    (tight around the visible-in-frame silhouette of the whole object, clipped to the frame), ``cls``,
    ``ignore`` (bool), ``visible`` (fraction), ``track_id``.
    """
    W, H = cam.width, cam.height
    img = _background(cam, cond, lane_phase)
    emis = np.zeros_like(img)
    idmap = np.full((H, W), -1, np.int32)
    placed = []
    for i, o in sorted(enumerate(objs), key=lambda t: -t[1].z):
        if o.z < 1.5:
            continue
        u1, v1 = cam.project(o.x - o.w / 2, o.z, o.elev + o.h)
        u2, v2 = cam.project(o.x + o.w / 2, o.z, o.elev)
        x0, y0 = int(math.floor(u1)), int(math.floor(v1))
        w, h = max(int(round(u2 - u1)), 1), max(int(round(v2 - v1)), 1)
        if x0 > W or y0 > H or x0 + w < 0 or y0 + h < 0 or w > 4 * W or h > 4 * H:
            continue
        if o.kind in ("light", "sign") or (o.kind == "scenery" and o.style.get("kind") == "pole"):
            # poles are drawn behind the head they carry
            pu, pv = cam.project(o.x, o.z, 0.0)
            pw = max(1, int(round(cam.f * 0.12 / o.z)))
            cv2.rectangle(
                img, (int(pu) - pw // 2, int(v2)), (int(pu) + pw // 2, int(pv)), (0.35, 0.35, 0.37), -1
            )
        spr = SPRITES[o.kind](w, h, o.style)
        _composite(img, idmap, emis, spr, x0, y0, i)
        if o.cls >= 0:
            placed.append((i, o, x0, y0, spr[1]))
    anns = []
    for i, o, x0, y0, a in placed:
        m = a > 0.5
        total = int(m.sum())
        if total == 0:
            continue
        ys, xs = np.nonzero(m)
        vis_in = (
            (idmap[np.clip(ys + y0, 0, H - 1), np.clip(xs + x0, 0, W - 1)] == i)
            & (ys + y0 >= 0)
            & (ys + y0 < H)
            & (xs + x0 >= 0)
            & (xs + x0 < W)
        )
        visible = float(vis_in.sum()) / total
        inside = (ys + y0 >= 0) & (ys + y0 < H) & (xs + x0 >= 0) & (xs + x0 < W)
        if not inside.any():
            continue
        bx1, by1 = xs[inside].min() + x0, ys[inside].min() + y0
        bx2, by2 = xs[inside].max() + x0 + 1, ys[inside].max() + y0 + 1
        ignore = visible < MIN_VISIBLE or (by2 - by1) < MIN_BOX_H or (bx2 - bx1) < 2
        anns.append(
            dict(
                bbox=[float(bx1), float(by1), float(bx2), float(by2)],
                cls=int(o.cls),
                ignore=bool(ignore),
                visible=round(visible, 3),
                track_id=int(o.track_id),
            )
        )
    img = _apply_conditions(img, emis, cam, cond, rng)
    return img, anns


def _apply_conditions(img, emis, cam, cond, rng):
    H, W = img.shape[:2]
    if cond.time == "dusk":
        img = img * np.array([0.75, 0.6, 0.55], np.float32)
    elif cond.time == "night":
        img = img * np.array([0.12, 0.13, 0.2], np.float32)
        glow = cv2.GaussianBlur(emis, (0, 0), 3.0)
        img = img + emis * 0.9 + glow * 0.8
    if cond.weather == "fog":
        rows = np.arange(H, dtype=np.float32)
        d = np.clip(1.0 - (rows - cam.horizon) / (H - cam.horizon), 0, 1)  # 1 at horizon, 0 at bottom
        d = np.where(rows < cam.horizon, 1.0, d) * rng.uniform(0.45, 0.75)
        fogc = np.array([0.7, 0.72, 0.75] if cond.time != "night" else [0.12, 0.12, 0.14], np.float32)
        img = img * (1 - d[:, None, None]) + fogc * d[:, None, None]
    elif cond.weather == "rain":
        streaks = np.zeros((H, W), np.float32)
        n = int(W * H / 600)
        xs, ys = rng.integers(0, W, n), rng.integers(0, H, n)
        ln = rng.integers(6, 16, n)
        for x, y, L in zip(xs, ys, ln):
            cv2.line(streaks, (int(x), int(y)), (int(x) + 2, int(y + L)), 1.0, 1)
        img = img * 0.85 + 0.12 + streaks[..., None] * 0.18
    if cond.glare:
        gx, gy = rng.uniform(0.1, 0.9) * W, rng.uniform(0.0, 0.4) * cam.horizon
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        r2 = ((xx - gx) ** 2 + (yy - gy) ** 2) / (0.35 * W) ** 2
        img = img + (np.exp(-r2) * rng.uniform(0.4, 0.8))[..., None] * np.array([1.0, 0.95, 0.8], np.float32)
    if cond.blur > 1:
        k = int(cond.blur)
        ker = np.zeros((k, k), np.float32)
        ker[k // 2] = 1.0 / k
        img = cv2.filter2D(img, -1, ker)
    img = img + rng.normal(0, cond.noise, img.shape).astype(np.float32)
    out = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    if cond.jpeg:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, cond.jpeg])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()
    return out


def random_scene(
    rng: np.random.Generator, width: int = 640, height: int = 480
) -> tuple[np.ndarray, list[dict]]:
    """One independent still frame with 2-18 labelled objects and roadside scenery."""
    cam = Camera(width, height, horizon=height * rng.uniform(0.38, 0.47), f=width * rng.uniform(0.75, 0.95))
    cond = Conditions.sample(rng)
    objs = []
    for z in np.sort(rng.uniform(8, 120, int(rng.integers(6, 16)))):
        objs += make_scenery(rng, float(z))
    n = int(rng.integers(2, 19))
    for cls in rng.choice(len(CLASSES), n, p=CLASS_FREQ):
        z0, z1 = Z_RANGE[int(cls)]
        # more near-mid objects than far ones (uniform in 1/Z would overweight the far end)
        z = float(z0 + (z1 - z0) * rng.random() ** 1.3)
        objs.append(make_object(rng, int(cls), z))
    return render_scene(objs, cam, cond, rng, lane_phase=float(rng.uniform(0, 12)))


# ------------------------------------------------------------------------------------------------
# Writers


_OWN = {"images": re.compile(r"\d{6}\.jpg"), "labels": re.compile(r"\d{6}\.txt")}


def _clear_previous(out: str, overwrite: bool) -> None:
    """``out`` must be new or empty; with ``overwrite``, a folder this writer made (nothing else in it) is
    emptied of the previous data set, so that no stale frame is left beside the new ones."""
    if not os.path.isdir(out) or not os.listdir(out):
        return
    if not overwrite:
        raise ValueError(f"{out} is not empty: choose a new folder (or overwrite=True / --overwrite to "
                         "replace a data set that synth wrote there)")
    own = []
    for entry in sorted(os.listdir(out)):
        path = os.path.join(out, entry)
        if entry == "annotations.json" and os.path.isfile(path):
            own.append(path)
        elif entry in _OWN and os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                if not _OWN[entry].fullmatch(name):
                    raise ValueError(f"{os.path.join(path, name)} was not written by synth: {out} is left as "
                                     "it is")
                own.append(os.path.join(path, name))
        else:
            raise ValueError(f"{path} was not written by synth: {out} is left as it is")
    for path in own:
        os.remove(path)


def write_dataset(out: str, n: int, seed: int, width: int = 640, height: int = 480, progress=None,
                  overwrite: bool = False) -> dict:
    """Write ``n`` frames to ``out/images/*.jpg``, YOLO labels to ``out/labels/*.txt`` and COCO json
    to ``out/annotations.json`` (``iscrowd=1`` marks ignore regions). Returns a summary dict.

    ``out`` must be new or empty, so that no data set is written over; ``overwrite`` replaces one that
    this function wrote (and refuses a folder with anything else in it)."""
    _clear_previous(out, overwrite)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    os.makedirs(os.path.join(out, "labels"), exist_ok=True)
    rng = np.random.default_rng(seed)
    coco = dict(
        images=[],
        annotations=[],
        categories=[dict(id=i + 1, name=c) for i, c in enumerate(CLASSES)],
        info=dict(description="driving_synth", seed=seed),
    )
    n_boxes = 0
    for k in range(n):
        img, anns = random_scene(rng, width, height)
        name = f"{k:06d}"
        cv2.imwrite(
            os.path.join(out, "images", name + ".jpg"), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95]
        )
        coco["images"].append(dict(id=k + 1, file_name=name + ".jpg", width=width, height=height))
        lines = []
        for a in anns:
            x1, y1, x2, y2 = a["bbox"]
            coco["annotations"].append(
                dict(
                    id=len(coco["annotations"]) + 1,
                    image_id=k + 1,
                    category_id=a["cls"] + 1,
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    area=(x2 - x1) * (y2 - y1),
                    iscrowd=int(a["ignore"]),
                )
            )
            if not a["ignore"]:
                n_boxes += 1
                lines.append(
                    f"{a['cls']} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                    f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
                )
        with open(os.path.join(out, "labels", name + ".txt"), "w") as f:
            f.write("\n".join(lines) + ("\n" if lines else ""))
        if progress is not None:
            progress(k + 1, n)
    with open(os.path.join(out, "annotations.json"), "w") as f:
        json.dump(coco, f)
    return dict(images=n, boxes=n_boxes, out=out, seed=seed)


def render_drive(
    n_frames: int,
    seed: int,
    width: int = 640,
    height: int = 480,
    fps: float = 30.0,
    cond: Conditions | None = None,
):
    """Yield (frame uint8 HxWx3 RGB, annotations) for a continuous drive at ~12 m/s.

    Objects keep their ``track_id`` while in view; new ones appear at the far end.
    """
    rng = np.random.default_rng(seed)
    cam = Camera(width, height)
    if cond is None:
        cond = Conditions.sample(rng)
        cond.blur = 0.0
    ego = 12.0
    dt = 1.0 / fps
    next_id = [0]

    def spawn(z=None):
        cls = int(rng.choice(len(CLASSES), p=CLASS_FREQ))
        z0, z1 = Z_RANGE[cls]
        o = make_object(rng, cls, float(rng.uniform(z0, z1)) if z is None else z, ego)
        o.track_id = next_id[0]
        next_id[0] += 1
        return o

    objs = [spawn() for _ in range(8)]
    scenery = []
    for z in np.arange(6, 130, 9.0):
        scenery += make_scenery(rng, float(z + rng.uniform(0, 4)))
    phase = 0.0
    for _ in range(n_frames):
        yield render_scene(objs + scenery, cam, cond, rng, lane_phase=phase)
        phase += ego * dt
        for o in objs:
            o.z += o.vz * dt
            o.x += o.vx * dt
        for s in scenery:
            s.z -= ego * dt
        objs = [o for o in objs if 2.0 < o.z < 95.0]
        scenery = [s for s in scenery if s.z > 2.0]
        while len(objs) < 8 or (len(objs) < 14 and rng.random() < 0.02):
            cls_o = spawn(float(rng.uniform(50, 85)))
            # oncoming traffic and roadside objects enter far away; same-direction traffic from behind too
            if cls_o.vz > 0 and rng.random() < 0.5:
                cls_o.z = 4.0
            objs.append(cls_o)
        if scenery and max(s.z for s in scenery) < 120:
            scenery += make_scenery(rng, 130.0)


def write_video(
    path: str,
    n_frames: int,
    seed: int,
    width: int = 640,
    height: int = 480,
    fps: float = 30.0,
    labels_json: str | None = None,
    progress=None,
) -> str:
    """Render a drive to ``path`` (codec chosen by :func:`apps.perception.video.open_writer`).
    Optionally write per-frame ground truth (boxes, classes, track ids) to ``labels_json``."""
    from .video import open_writer

    writer = open_writer(path, fps, (width, height))
    gt = []
    for k, (frame, anns) in enumerate(render_drive(n_frames, seed, width, height, fps)):
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
        gt.append(dict(frame=k, objects=anns))
        if progress is not None:
            progress(k + 1, n_frames)
    writer.release()
    if labels_json:
        with open(labels_json, "w") as f:
            json.dump(dict(classes=list(CLASSES), fps=fps, frames=gt), f)
    return path
