"""Vectorised numpy ray caster for the synthetic rooms (scene sampling lives in synthetic.py).

World frame: metres, z up, the room is the box [0, L] (floor z = 0). Camera frame: x right,
y down, z forward; rays are R @ ((u - cx) / f, (v - cy) / f, 1), so the ray parameter t of a
hit IS the planar depth a Kinect-style sensor reports.

Each primitive (axis-aligned box, vertical cylinder) is tested only on the pixels inside its
projected screen rectangle, keeping the nearest hit per pixel. A hit records its object id
and the axis of the face hit; normals, texture coordinates, textures, Lambertian shading and
sensor effects are then evaluated once per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PATTERNS = ("plain", "stripes", "checks", "blobs")


@dataclass
class Scene:
    """Geometry + materials. Objects 0, 1, 2 are the floor, ceiling and walls of the room."""

    room: np.ndarray        # (3,) room extents
    boxes: np.ndarray       # (M, 6) lo xyz, hi xyz
    box_obj: np.ndarray     # (M,) object id (table top and legs share one)
    cyls: np.ndarray        # (C, 5) centre x, centre y, radius, z0, z1
    cyl_obj: np.ndarray     # (C,)
    obj_class: np.ndarray   # (O,) class id of each object
    col_a: np.ndarray       # (O, 3) float albedo 0..255 of the two texture colours
    col_b: np.ndarray
    pattern: np.ndarray     # (O,) index into PATTERNS
    freq: np.ndarray        # (O,) cycles per metre
    angle: np.ndarray       # (O,) stripe direction
    phase: np.ndarray       # (O,)
    shiny: np.ndarray       # (O,) bool: specular highlight (and depth dropout there)
    light: np.ndarray       # (3,) point light position


@dataclass
class Camera:
    pos: np.ndarray  # (3,)
    rot: np.ndarray  # (3, 3) columns: camera x (right), y (down), z (forward) in world
    f: float
    cx: float
    cy: float


def _rays(cam: Camera, h: int, w: int) -> np.ndarray:
    """(3, h, w) float32 world ray directions, planar so per-axis maths is contiguous."""
    u = (np.arange(w, dtype=np.float32) + 0.5 - cam.cx) / cam.f
    v = (np.arange(h, dtype=np.float32) + 0.5 - cam.cy) / cam.f
    r = cam.rot.astype(np.float32)
    return u[None, None, :] * r[:, 0, None, None] + v[None, :, None] * r[:, 1, None, None] + r[:, 2, None, None]


def _screen_rect(cam: Camera, lo, hi, h: int, w: int):
    """Pixel rectangle (r0, r1, c0, c1) covering a box's projection; the whole image if behind."""
    corners = np.stack(np.meshgrid(*zip(lo, hi), indexing="ij"), -1).reshape(-1, 3)
    pc = (corners - cam.pos) @ cam.rot
    if (pc[:, 2] < 0.05).any():
        return 0, h, 0, w
    u = pc[:, 0] / pc[:, 2] * cam.f + cam.cx
    v = pc[:, 1] / pc[:, 2] * cam.f + cam.cy
    c0, c1 = max(0, int(u.min()) - 1), min(w, int(np.ceil(u.max())) + 1)
    r0, r1 = max(0, int(v.min()) - 1), min(h, int(np.ceil(v.max())) + 1)
    return r0, r1, c0, c1


def _cast_room(scene: Scene, cam: Camera, d: np.ndarray):
    """Exit distance of every ray from the room box, the axis hit and floor/ceiling/wall id."""
    o = cam.pos.astype(np.float32)
    # A ray parallel to a pair of walls never exits through them: +inf, not a division by a stand-in
    # epsilon whose sign may differ from the ray's (that gave t = -2e9 and NaN texture coordinates).
    ts = [np.where(np.abs(d[a]) < 1e-9, np.float32(np.inf),
                   np.where(d[a] > 0, scene.room[a] - o[a], -o[a]) / _safe(d[a])) for a in range(3)]
    t = np.minimum(np.minimum(ts[0], ts[1]), ts[2])
    axis = np.where(t == ts[2], 2, np.where(t == ts[1], 1, 0)).astype(np.int8)
    obj = np.where(axis == 2, np.where(d[2] < 0, 0, 1), 2).astype(np.int16)
    return t.astype(np.float32), axis, obj


def _safe(x):
    """x with magnitudes below 1e-9 raised to 1e-9, keeping the sign (so 1/x keeps the ray's direction)."""
    return np.where(np.abs(x) < 1e-9, np.where(x < 0, np.float32(-1e-9), np.float32(1e-9)), x)


def _cast_box(lo, hi, o, inv, best, axis, obj, oid):
    """Slab test on a pixel window (views of the full-image buffers are updated in place)."""
    t0 = [(lo[a] - o[a]) * inv[a] for a in range(3)]
    t1 = [(hi[a] - o[a]) * inv[a] for a in range(3)]
    tmin = [np.minimum(t0[a], t1[a]) for a in range(3)]
    tfar = np.minimum(np.minimum(np.maximum(t0[0], t1[0]), np.maximum(t0[1], t1[1])),
                      np.maximum(t0[2], t1[2]))
    tnear = np.maximum(np.maximum(tmin[0], tmin[1]), tmin[2])
    hit = (tnear <= tfar) & (tnear > 0) & (tnear < best)
    if not hit.any():
        return
    ax = np.where(tnear == tmin[0], 0, np.where(tnear == tmin[1], 1, 2)).astype(np.int8)
    best[hit], axis[hit], obj[hit] = tnear[hit], ax[hit], oid


def _cast_cyl(cyl, o, d, best, axis, obj, oid):
    """Vertical cylinder: side (axis code 3) and top cap (axis 2, seen from above)."""
    cx, cy, r, z0, z1 = cyl
    ox, oy = o[0] - cx, o[1] - cy
    a = d[0] * d[0] + d[1] * d[1]
    b = 2.0 * (ox * d[0] + oy * d[1])
    c = ox * ox + oy * oy - r * r
    disc = b * b - 4.0 * a * c
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * np.maximum(a, 1e-12))
    z = o[2] + t * d[2]
    side = (disc >= 0) & (t > 0) & (z >= z0) & (z <= z1) & (t < best)
    best[side], axis[side], obj[side] = t[side], 3, oid
    if o[2] > z1:
        tc = (z1 - o[2]) / _safe(d[2])
        inside = (ox + tc * d[0]) ** 2 + (oy + tc * d[1]) ** 2 <= r * r
        cap = (tc > 0) & inside & (tc < best)
        best[cap], axis[cap], obj[cap] = tc[cap], 2, oid


def cast(scene: Scene, cam: Camera, h: int, w: int):
    """Nearest hit per pixel: (ray dirs, planar depth t, face axis code, object id)."""
    d = _rays(cam, h, w)
    inv = 1.0 / _safe(d)
    o = cam.pos.astype(np.float32)
    best, axis, obj = _cast_room(scene, cam, d)
    for (lo, hi), oid in zip(zip(scene.boxes[:, :3], scene.boxes[:, 3:]), scene.box_obj):
        r0, r1, c0, c1 = _screen_rect(cam, lo, hi, h, w)
        if r1 > r0 and c1 > c0:
            win = (slice(r0, r1), slice(c0, c1))
            _cast_box(lo, hi, o, inv[(slice(None), *win)], best[win], axis[win], obj[win], oid)
    for cyl, oid in zip(scene.cyls, scene.cyl_obj):
        lo = np.array([cyl[0] - cyl[2], cyl[1] - cyl[2], cyl[3]])
        hi = np.array([cyl[0] + cyl[2], cyl[1] + cyl[2], cyl[4]])
        r0, r1, c0, c1 = _screen_rect(cam, lo, hi, h, w)
        if r1 > r0 and c1 > c0:
            win = (slice(r0, r1), slice(c0, c1))
            _cast_cyl(cyl, o, d[(slice(None), *win)], best[win], axis[win], obj[win], oid)
    return d, best, axis, obj


def _normals_uv(scene: Scene, d, p, axis, obj):
    """Planar unit normals facing the camera and texture coordinates (metres along the surface)."""
    n = np.zeros_like(p)
    for a in range(3):
        n[a] = np.where(axis == a, -np.sign(d[a]), np.float32(0.0))
    u = np.where(axis == 0, p[1], p[0])
    v = np.where(axis == 2, p[1], p[2])
    side = axis == 3
    if side.any():
        cyl_of = np.full(len(scene.obj_class), -1)
        cyl_of[scene.cyl_obj] = np.arange(len(scene.cyl_obj))
        cyl = scene.cyls[cyl_of[obj[side]]]
        dx, dy = p[0][side] - cyl[:, 0], p[1][side] - cyl[:, 1]
        rr = np.maximum(np.hypot(dx, dy), 1e-6)
        n[0][side], n[1][side] = dx / rr, dy / rr
        u[side] = np.arctan2(dy, dx) * cyl[:, 2]
    return n, u, v


def texture(scene: Scene, obj, u, v) -> np.ndarray:
    """Planar albedo (3, h, w) float32: one of the object's two colours, chosen by its pattern."""
    f, ang, ph, pat = scene.freq[obj], scene.angle[obj], scene.phase[obj], scene.pattern[obj]
    s = (u * np.cos(ang) + v * np.sin(ang)) * f + ph
    stripes = (np.floor(s).astype(np.int32) & 1) == 1
    checks = ((np.floor(u * f + ph).astype(np.int32) + np.floor(v * f).astype(np.int32)) & 1) == 1
    blobs = np.sin(6.283 * u * f + ph) + np.sin(4.4 * v * f - 2.0 * ph) > 0.4
    pick = np.where(pat == 1, stripes, np.where(pat == 2, checks, (pat == 3) & blobs))
    return np.stack([np.where(pick, scene.col_b[:, c][obj], scene.col_a[:, c][obj]) for c in range(3)])


def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def shade(scene: Scene, cam: Camera, d, t, axis, obj, rng):
    """Lambertian + ambient lighting (and a highlight on shiny objects), all planar float32.

    Returns rgb (3, h, w) before sensor effects, albedo (3, h, w), the specular term and |cos|
    of the viewing angle (both h×w), which drive the depth holes.
    """
    p = cam.pos.astype(np.float32)[:, None, None] + t * d
    n, u, v = _normals_uv(scene, d, p, axis, obj)
    albedo = texture(scene, obj, u, v)
    to_light = scene.light.astype(np.float32)[:, None, None] - p
    dist2 = _dot(to_light, to_light)
    ldir = to_light / np.sqrt(dist2)
    lam = np.maximum(_dot(n, ldir), 0.0)
    view = -d / np.sqrt(_dot(d, d))
    cos_view = np.abs(_dot(n, view))
    spec = np.zeros_like(t)
    shiny = scene.shiny[obj]
    if shiny.any():
        half = ldir[:, shiny] + view[:, shiny]
        nh = _dot(n[:, shiny], half) / np.maximum(np.sqrt(_dot(half, half)), 1e-6)
        spec[shiny] = np.maximum(nh, 0.0) ** 40
    light = 0.35 + 1.1 * lam / (1.0 + 0.04 * dist2)
    rgb = albedo * light + 200.0 * spec
    return rgb, albedo, spec, cos_view


def sensor_rgb(rgb, rng, gain: float, tint) -> np.ndarray:
    """Planar linear rgb -> H×W×3 uint8 with exposure gain, colour tint and Gaussian noise."""
    noise = rng.standard_normal(rgb.shape, dtype=np.float32) * 2.5
    scale = (gain * np.asarray(tint, np.float32))[:, None, None]
    return np.clip(rgb * scale + noise, 0, 255).astype(np.uint8).transpose(1, 2, 0).copy()


def sensor_depth(t, rgb_lin, spec, cos_view, rng, max_range: float) -> np.ndarray:
    """Kinect-like depth: noise growing with range, 1 mm steps, and the usual holes (0)."""
    h, w = t.shape
    sigma = 0.0012 + 0.0019 * (t - 0.4) ** 2  # Kinect v1 axial noise model (Nguyen et al. 2012)
    depth = np.rint((t + rng.standard_normal(t.shape, dtype=np.float32) * sigma) * 1000.0) / 1000.0
    r = rng.random(t.shape, dtype=np.float32)  # one draw serves the random dropouts below
    hole = (depth > max_range) | (depth < 0.45)                # outside the sensor's range
    hole |= (rgb_lin.mean(0) < 28) & (r < 0.7)                # dark, absorbing surfaces
    hole |= spec > 0.55                                        # specular highlights
    hole |= (cos_view < 0.12) & (r < 0.8)                      # grazing angle
    hole |= r > 0.998                                          # isolated dropouts
    jump = np.zeros_like(hole)
    jump[:, 1:] = t[:, 1:] - t[:, :-1] > 0.12                  # projector shadow right of an edge
    for k in range(max(1, w // 120)):
        hole[:, k:] |= jump[:, : w - k]
    for _ in range(int(rng.integers(0, 3))):                  # a few blotches of lost depth
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.02, 0.08) * h + 1, rng.uniform(0.02, 0.08) * w + 1
        y0, y1, x0, x1 = max(0, int(cy - ry)), int(cy + ry) + 1, max(0, int(cx - rx)), int(cx + rx) + 1
        yy, xx = np.ogrid[y0:min(h, y1), x0:min(w, x1)]
        hole[y0:y1, x0:x1] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1.0
    depth[hole] = 0.0
    return depth.astype(np.float32)
