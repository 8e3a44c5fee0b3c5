"""Procedural synthetic RGB-D rooms: exact labels and metric depth, generated in memory.

A box room (floor, walls, ceiling) with furniture is sampled from `(seed, index)` alone and
rendered by the ray caster in synthetic_render.py: pinhole camera with NYU-like intrinsics,
procedural textures, one point light, RGB noise and Kinect-like depth (noise, 1 mm steps,
holes at far range, dark/specular/grazing surfaces, projector shadows and random dropouts).

Two pairs of classes are told apart ONLY by geometry (GEOMETRY_ONLY_CLASSES): their textures
come from the same palette and pattern sampler ("panel", "fabric"), so a model must use depth:
- poster (flat on a wall, 1 cm thick) vs cabinet (a box protruding 35-60 cm from the wall),
- rug (1 cm on the floor) vs platform (a 12-35 cm high box).
See docs/synthetic.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asymformer.progress import progress_bar

from . import synthetic_render as R
from .base import RGBDDataset

__all__ = ["CLASS_NAMES", "CLASS_COLORS", "CLASS_FAMILY", "PALETTES", "GEOMETRY_ONLY_CLASSES",
           "GEOMETRY_ONLY_IDS", "GEOMETRY_TWINS", "render_frame", "SyntheticRooms",
           "write_synthetic_dataset"]

CLASS_NAMES = ("wall", "floor", "ceiling", "poster", "cabinet", "table", "rug", "platform", "bin", "box")
CLASS_COLORS = np.array([[174, 199, 232], [152, 223, 138], [255, 187, 120], [214, 39, 40], [31, 119, 180],
                         [140, 86, 75], [247, 182, 210], [148, 103, 189], [127, 127, 127], [255, 127, 14]],
                        dtype=np.uint8)
# texture family of each class: twins share one, so colour and pattern carry no information
CLASS_FAMILY = ("wall", "floor", "ceiling", "panel", "panel", "wood", "fabric", "fabric", "metal", "cardboard")
GEOMETRY_TWINS = {"poster": "cabinet", "rug": "platform"}
GEOMETRY_ONLY_CLASSES = ("poster", "cabinet", "rug", "platform")
GEOMETRY_ONLY_IDS = tuple(CLASS_NAMES.index(n) for n in GEOMETRY_ONLY_CLASSES)
PALETTES = {k: np.array(v, dtype=np.float32) for k, v in {
    "wall": [[200, 196, 185], [214, 208, 196], [190, 200, 205], [205, 190, 180], [180, 190, 170]],
    "floor": [[140, 100, 70], [120, 85, 55], [160, 120, 85], [110, 110, 115], [150, 145, 140]],
    "ceiling": [[235, 235, 232], [225, 228, 230], [240, 236, 228]],
    "panel": [[200, 40, 40], [40, 90, 190], [230, 180, 30], [40, 150, 80], [140, 60, 160], [230, 120, 40],
              [35, 35, 40], [245, 245, 240]],
    "wood": [[90, 60, 35], [110, 75, 45], [70, 50, 30], [130, 95, 60]],
    "fabric": [[150, 40, 60], [60, 70, 130], [170, 150, 100], [80, 120, 90], [120, 80, 140], [190, 110, 70]],
    "metal": [[160, 165, 170], [120, 125, 135], [90, 100, 115], [180, 180, 175]],
    "cardboard": [[180, 140, 90], [160, 120, 70], [200, 170, 120], [145, 115, 75]],
}.items()}
_PLAIN_HEAVY = {"wall", "ceiling", "metal"}


class _Builder:
    """Accumulates objects, their boxes/cylinders and materials while a scene is sampled."""

    def __init__(self, rng):
        self.rng = rng
        self.boxes, self.box_obj, self.cyls, self.cyl_obj = [], [], [], []
        self.cls, self.tex, self.shiny, self.centres = [], [], [], []

    def add(self, cls: int, boxes=(), cyls=(), shiny=False, centre=None):
        oid = len(self.cls)
        self.cls.append(cls)
        self.tex.append(_texture(CLASS_FAMILY[cls], self.rng))
        self.shiny.append(shiny)
        for b in boxes:
            self.boxes.append(b)
            self.box_obj.append(oid)
        for c in cyls:
            self.cyls.append(c)
            self.cyl_obj.append(oid)
        self.centres.append(centre)
        return oid


def _texture(family: str, rng) -> tuple:
    """(colour a, colour b, pattern, freq, angle, phase): the SAME sampler for every class of a family."""
    pal = PALETTES[family]
    a, b = rng.choice(len(pal), size=2, replace=False)
    probs = (0.7, 0.2, 0.05, 0.05) if family in _PLAIN_HEAVY else (0.25, 0.25, 0.25, 0.25)
    pattern = rng.choice(len(R.PATTERNS), p=probs)  # probabilities in PATTERNS order: plain first
    return pal[a], pal[b], pattern, rng.uniform(1.5, 6.0), rng.uniform(0, np.pi), rng.uniform(0, 1)


def _free(rect, rects, room, margin=0.1) -> bool:
    x0, y0, x1, y1 = rect
    if x0 < 0.02 or y0 < 0.02 or x1 > room[0] - 0.02 or y1 > room[1] - 0.02:
        return False
    return all(x1 + margin <= a0 or a1 + margin <= x0 or y1 + margin <= b0 or b1 + margin <= y0
               for a0, b0, a1, b1 in rects)


def _footprint(rng, room, w, d, rects, wall: bool, tries: int = 25):
    """A free floor rectangle of size w×d (against a random wall if `wall`), or None."""
    for _ in range(tries):
        if wall:
            side = rng.integers(4)
            along = rng.uniform(0.05, max(0.06, room[side % 2] - w - 0.05))
            x0, y0 = ((along, 0.021), (0.021, along), (along, room[1] - d - 0.021),
                      (room[0] - d - 0.021, along))[side]
            rw, rd = (w, d) if side % 2 == 0 else (d, w)
            rect = (x0, y0, x0 + rw, y0 + rd)
        else:
            x0, y0 = rng.uniform(0.3, room[0] - w - 0.3), rng.uniform(0.3, room[1] - d - 0.3)
            rect = (x0, y0, x0 + w, y0 + d)
        if _free(rect, rects, room):
            rects.append(rect)
            return rect
    return None


def _add_furniture(bld: _Builder, rng, room, rects):
    for _ in range(rng.integers(1, 4)):  # cabinets: floor-standing or wall-mounted boxes
        r = _footprint(rng, room, rng.uniform(0.5, 1.4), rng.uniform(0.35, 0.6), rects, wall=True)
        if r is not None:
            z0 = rng.uniform(1.2, 1.5) if rng.random() < 0.4 else 0.0
            z1 = min(room[2] - 0.1, z0 + (rng.uniform(0.5, 0.8) if z0 else rng.uniform(0.8, 2.0)))
            bld.add(4, boxes=[(r[0], r[1], z0, r[2], r[3], z1)])
    for _ in range(rng.integers(1, 5)):  # posters: 1 cm thin boxes on a wall
        side, w, hgt = rng.integers(4), rng.uniform(0.5, 1.4), rng.uniform(0.4, 1.1)
        along = rng.uniform(0.1, max(0.11, room[side % 2] - w - 0.1))
        z0 = rng.uniform(0.7, min(1.6, room[2] - hgt - 0.1))
        lo = [(along, 0.0), (0.0, along), (along, room[1] - 0.01), (room[0] - 0.01, along)][side]
        ext = (w, 0.01) if side % 2 == 0 else (0.01, w)
        bld.add(3, boxes=[(lo[0], lo[1], z0, lo[0] + ext[0], lo[1] + ext[1], z0 + hgt)])
    tables = []
    for _ in range(rng.integers(0, 3)):  # tables: top + four legs, one object
        r = _footprint(rng, room, rng.uniform(0.8, 1.8), rng.uniform(0.6, 1.0), rects, wall=False)
        if r is not None:
            ht, leg = rng.uniform(0.65, 0.8), 0.05
            parts = [(r[0], r[1], ht - 0.04, r[2], r[3], ht)]
            for x, y in ((r[0] + 0.03, r[1] + 0.03), (r[2] - 0.03 - leg, r[1] + 0.03),
                         (r[0] + 0.03, r[3] - 0.03 - leg), (r[2] - 0.03 - leg, r[3] - 0.03 - leg)):
                parts.append((x, y, 0.0, x + leg, y + leg, ht - 0.04))
            bld.add(5, boxes=parts)
            tables.append((r, ht))
    # rugs and platforms: the same footprint sampler, only the height differs
    for cls in [6] * int(rng.integers(1, 3)) + [7] * int(rng.integers(1, 3)):
        r = _footprint(rng, room, rng.uniform(0.8, 2.0), rng.uniform(0.6, 1.6), rects, wall=False)
        if r is not None:
            hgt = 0.01 if cls == 6 else rng.uniform(0.12, 0.35)
            bld.add(cls, boxes=[(r[0], r[1], 0.0, r[2], r[3], hgt)])
    for _ in range(rng.integers(1, 4)):  # bins: shiny metal cylinders
        rad = rng.uniform(0.12, 0.3)
        r = _footprint(rng, room, 2 * rad, 2 * rad, rects, wall=False)
        if r is not None:
            cyl = ((r[0] + r[2]) / 2, (r[1] + r[3]) / 2, rad, 0.0, rng.uniform(0.3, 0.9))
            bld.add(8, cyls=[cyl], shiny=True, centre=(cyl[0], cyl[1], cyl[4] / 2))
    for _ in range(rng.integers(1, 4)):  # boxes: on the floor or on a table
        sx, sy, sz = rng.uniform(0.25, 0.6, size=3)
        if tables and rng.random() < 0.5:
            (t, ht) = tables[rng.integers(len(tables))]
            if t[2] - t[0] > sx and t[3] - t[1] > sy:
                x, y = rng.uniform(t[0], t[2] - sx), rng.uniform(t[1], t[3] - sy)
                bld.add(9, boxes=[(x, y, ht, x + sx, y + sy, ht + sz)])
                continue
        r = _footprint(rng, room, sx, sy, rects, wall=False)
        if r is not None:
            bld.add(9, boxes=[(r[0], r[1], 0.0, r[2], r[3], sz)])


def _camera(rng, room, rects, centres, h: int, w: int) -> R.Camera:
    """A pose in free space aimed (with jitter) at a random object, NYU-like intrinsics."""
    pos = None
    for _ in range(50):
        x, y = rng.uniform(0.4, room[0] - 0.4), rng.uniform(0.4, room[1] - 0.4)
        if _free((x - 0.2, y - 0.2, x + 0.2, y + 0.2), rects, room, margin=0.15):
            pos = np.array([x, y, rng.uniform(1.0, 1.7)])
            break
    if pos is None:
        pos = np.array([room[0] / 2, room[1] / 2, room[2] - 0.3])  # above everything
    target = centres[rng.integers(len(centres))] if rng.random() < 0.85 else rng.uniform(0, 1, 3) * room
    fwd = np.asarray(target, float) - pos
    yaw = np.arctan2(fwd[1], fwd[0]) + np.radians(rng.uniform(-10, 10))
    pitch = np.clip(np.arctan2(fwd[2], np.hypot(fwd[0], fwd[1])) + np.radians(rng.uniform(-5, 5)),
                    np.radians(-50), np.radians(20))
    fwd = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    roll = np.radians(rng.uniform(-3, 3))
    right, down = np.cos(roll) * right + np.sin(roll) * down, np.cos(roll) * down - np.sin(roll) * right
    f = 0.81 * w * rng.uniform(0.95, 1.05)  # NYUv2: fx = 518.9 at 640 px wide
    return R.Camera(pos, np.stack([right, down, fwd], 1), f, w / 2 * rng.uniform(0.98, 1.02),
                    h / 2 * rng.uniform(0.98, 1.02))


def sample_scene(rng, h: int, w: int) -> tuple[R.Scene, R.Camera]:
    """Room, furniture, materials, light and camera drawn from `rng`."""
    room = np.array([rng.uniform(3.5, 7.0), rng.uniform(3.0, 6.0), rng.uniform(2.5, 3.0)])
    bld = _Builder(rng)
    for cls in (1, 2, 0):  # object ids 0, 1, 2 = floor, ceiling, walls (see synthetic_render)
        bld.add(cls)
    rects: list = []
    _add_furniture(bld, rng, room, rects)
    for i, c in enumerate(bld.centres):
        if c is None and i >= 3:
            boxes = np.array([b for b, o in zip(bld.boxes, bld.box_obj) if o == i])
            bld.centres[i] = (boxes[:, :3].min(0) + boxes[:, 3:].max(0)) / 2
    centres = [c for c in bld.centres[3:]] or [room / 2]
    cam = _camera(rng, room, rects, centres, h, w)
    tex = list(zip(*bld.tex))
    scene = R.Scene(
        room=room.astype(np.float32), boxes=np.array(bld.boxes, np.float32).reshape(-1, 6),
        box_obj=np.array(bld.box_obj, np.int16), cyls=np.array(bld.cyls, np.float32).reshape(-1, 5),
        cyl_obj=np.array(bld.cyl_obj, np.int16), obj_class=np.array(bld.cls, np.int64),
        col_a=np.array(tex[0], np.float32), col_b=np.array(tex[1], np.float32),
        pattern=np.array(tex[2]), freq=np.array(tex[3], np.float32), angle=np.array(tex[4], np.float32),
        phase=np.array(tex[5], np.float32), shiny=np.array(bld.shiny),
        light=np.array([rng.uniform(0.2, 0.8) * room[0], rng.uniform(0.2, 0.8) * room[1], room[2] - 0.2]))
    return scene, cam


def render_frame(seed: int, index: int, height: int = 240, width: int = 320, return_aux: bool = False) -> dict:
    """Frame `index` of the stream `seed`: a raw sample dict (depends only on seed and index).

    With `return_aux`, also "albedo" (H×W×3 float32 texture colour before lighting) and
    "intrinsics" (f, cx, cy).
    """
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    if int(index) < 0 or int(seed) < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    h, w = int(height), int(width)
    rng = np.random.default_rng((int(seed), int(index)))
    scene, cam = sample_scene(rng, h, w)
    d, t, axis, obj = R.cast(scene, cam, h, w)
    rgb_lin, albedo, spec, cos_view = R.shade(scene, cam, d, t, axis, obj, rng)
    rgb = R.sensor_rgb(rgb_lin, rng, rng.uniform(0.85, 1.15), rng.uniform(0.95, 1.05, 3))
    depth = R.sensor_depth(t, rgb_lin, spec, cos_view, rng, max_range=rng.uniform(5.0, 8.0))
    sample = {"rgb": rgb, "depth": depth, "label": scene.obj_class[obj], "name": f"room_{index:06d}"}
    if return_aux:
        sample.update(albedo=albedo.transpose(1, 2, 0), intrinsics=(cam.f, cam.cx, cam.cy))
    return sample


class SyntheticRooms(RGBDDataset):
    """`num` rendered rooms (frames offset .. offset+num-1 of stream `seed`), rendered on demand.

    `cache=True` keeps rendered raw samples in memory (about 0.5 MB per 240×320 frame).
    """

    def __init__(self, num: int, height: int = 240, width: int = 320, seed: int = 0, transform=None,
                 offset: int = 0, cache: bool = False):
        if int(num) < 1:
            raise ValueError(f"num must be >= 1 (number of frames), got {num}")
        if int(height) < 1 or int(width) < 1:
            raise ValueError(f"height and width must be positive, got {height}x{width}")
        if int(offset) < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        self.offset, self.height, self.width = int(offset), int(height), int(width)
        names = [f"room_{self.offset + i:06d}" for i in range(int(num))]
        super().__init__(names, CLASS_NAMES, CLASS_COLORS, transform=transform, seed=seed,
                         normalization="nyuv2_official")
        self._cache = {} if cache else None

    def load_sample(self, index: int) -> dict:
        if self._cache is not None and index in self._cache:
            s = self._cache[index]
            return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
        s = render_frame(self.seed, self.offset + index, self.height, self.width)
        if self._cache is not None:
            self._cache[index] = s
            return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
        return s


def write_synthetic_dataset(out, num_train: int, num_test: int, height: int = 240, width: int = 320,
                            seed: int = 0, overwrite: bool = False, progress: bool = True) -> dict:
    """Write frames 0..num_train-1 (train) and the next num_test (test) in the custom layout.

    Depth: uint16 millimetres (depth_unit 0.001, 0 = invalid); labels: one_based uint8 PNGs.
    Returns a summary dict (root, counts, classes). progress: show a tqdm bar.
    """
    from asymformer.files import write_json

    from .io import atomic_write_bytes, write_png

    if int(num_train) < 1 or int(num_test) < 0:
        raise ValueError(f"num_train must be >= 1 and num_test >= 0, got {num_train}, {num_test}")
    out = Path(out)
    if (out / "classes.json").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a dataset (classes.json); choose another folder or "
                              f"pass overwrite=True (--overwrite)")
    splits = {"train": range(int(num_train)), "test": range(int(num_train), int(num_train) + int(num_test))}
    total = int(num_train) + int(num_test)
    with progress_bar(total=total, desc="prepare synthetic", unit="frame", enabled=progress) as bar:
        for idxs in splits.values():
            for i in idxs:
                s = render_frame(seed, i, height, width)
                write_png(out / "rgb" / f"{s['name']}.png", s["rgb"])
                mm = np.clip(np.rint(s["depth"] * 1000.0), 0, 65535).astype(np.uint16)
                write_png(out / "depth" / f"{s['name']}.png", mm)
                write_png(out / "labels" / f"{s['name']}.png", (s["label"] + 1).astype(np.uint8))
                bar.update(1)
    for split, idxs in splits.items():
        text = "".join(f"room_{i:06d}\n" for i in idxs)
        atomic_write_bytes(out / f"{split}.txt", text.encode())
    meta = {"names": list(CLASS_NAMES), "colors": CLASS_COLORS.tolist(), "depth_unit": 0.001,
            "labels": "one_based", "source": f"asymformer synthetic rooms seed={seed} {height}x{width}",
            "geometry_only_classes": list(GEOMETRY_ONLY_CLASSES)}
    write_json(out / "classes.json", meta)
    return {"root": str(out), "train": int(num_train), "test": int(num_test), "height": int(height),
            "width": int(width), "seed": int(seed), "classes": list(CLASS_NAMES)}
