"""Which files `asymformer predict` reads and what it calls their outputs: FILE, DIR or GLOB
for --rgb / --depth / --labels, paired by name (a glob by what its wildcards match, a role word
such as `_rgb` / `_depth` ignored), and output names that keep the source file's name so two
cameras' frames never collide in one --out."""

from __future__ import annotations

import glob
import re
from pathlib import Path

from asymformer.data.io import ANY_SUFFIXES, DEPTH_SUFFIXES, LABEL_SUFFIXES, RGB_SUFFIXES

# the files of a folder that --rgb / --depth / --labels take: what the matching reader reads
_SUFFIXES = {"rgb": RGB_SUFFIXES, "depth": DEPTH_SUFFIXES, "labels": LABEL_SUFFIXES}
# a role word at the end (a_rgb, a-depth, a.color) or start (rgb_a) of a name; dropped when pairing
_ROLE = r"(rgb|color|colour|image|img|depth|aligned_depth|depth_aligned|depth_raw|label|labels|gt)"
_ROLE_END = re.compile(r"^(.+?)[_\-. ]" + _ROLE + r"$", re.IGNORECASE)
_ROLE_START = re.compile(r"^" + _ROLE + r"[_\-. ](.+)$", re.IGNORECASE)


def _glob_regex(pattern: str) -> re.Pattern:
    """A regex for a glob pattern whose groups are what the wildcards matched."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            while i + 1 < len(pattern) and pattern[i + 1] == "*":
                i += 1
            out.append("(.*)")
        elif ch == "?":
            out.append("(.)")
        elif ch == "[" and "]" in pattern[i + 1:]:
            j = pattern.index("]", i + 2) if pattern[i + 1] == "]" else pattern.index("]", i + 1)
            body = pattern[i + 1:j]
            out.append("([" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "])")
            i = j
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _glob_key(pattern: str, path: str) -> str:
    """What the wildcards matched: folder parts joined by '/', the file-name part concatenated."""
    head = pattern.rpartition("/")[0]
    n_dir = _glob_regex(head).groups if head else 0
    m = _glob_regex(pattern).match(path)
    if not m:
        return Path(path).stem
    groups = m.groups()
    key = "/".join(g for g in groups[:n_dir] if g)
    base = "".join(g for g in groups[n_dir:] if g)
    return f"{key}/{base}" if key and base else (key or base or Path(path).stem)


def expand(spec, what: str) -> list[tuple[str, Path]]:
    """FILE, DIR (the files its reader reads: io.*_SUFFIXES) or GLOB -> sorted (key, path); FileNotFoundError if none.

    The key pairs files across --rgb / --depth / --labels: the stem for files and folders,
    what the wildcards matched for a glob ("frames/*_rgb.png" gives "a" for frames/a_rgb.png).
    """
    p = Path(spec)
    if p.is_file():
        return [(p.stem, p)]
    if p.is_dir():
        suffixes = _SUFFIXES[what]
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
        if not files:
            raise FileNotFoundError(f"--{what} directory {p} has no {'/'.join(suffixes)} files")
        return [(f.stem, f) for f in files]
    if any(ch in str(spec) for ch in "*?["):
        files = sorted(f for f in glob.glob(str(spec)) if Path(f).is_file())
        if not files:
            raise FileNotFoundError(f"--{what} pattern {spec!r} matches no files")
        return [(_glob_key(str(spec), f), Path(f)) for f in files]
    raise FileNotFoundError(f"--{what} {spec} is not a file, a directory or a glob pattern")


def _strip_role(key: str) -> str:
    key = Path(key).with_suffix("").as_posix() if Path(key).suffix.lower() in ANY_SUFFIXES else key
    head, _, base = key.rpartition("/")
    m = _ROLE_END.match(base) or _ROLE_START.match(base)
    if m:
        base = m.group(1) if m.re is _ROLE_END else m.group(2)
    return f"{head}/{base}" if head else base


def _by_key(items: list[tuple[str, Path]], what: str, strip: bool) -> dict[str, Path]:
    names: dict[str, Path] = {}
    for key, path in items:
        key = _strip_role(key) if strip else key
        if key in names:
            raise ValueError(f"--{what}: two files pair as {key!r} ({names[key]}, {path}); keep one per frame")
        names[key] = path
    return names


def pair_files(rgb, depth, labels=None) -> list[tuple[str, Path, Path, Path | None]]:
    """(name, rgb, depth, label-or-None) for each frame; rules in docs/deploy.md ("Pairing files").

    1. A single file on each side is one frame, whatever the names.
    2. Otherwise files pair by key: the stem, or for a glob what its wildcards matched.
    3. If the keys do not all pair, a role word at the end or start of each key (a_rgb,
       a-depth, rgb_a, color/colour/image/img, depth/aligned_depth/depth_raw, label/gt) is
       dropped on every side, so a_rgb.png pairs with a_depth.png.
    Names left without a partner are an error that lists them.
    """
    if Path(rgb).is_dir() and Path(depth).is_dir() and Path(rgb).resolve() == Path(depth).resolve():
        raise ValueError(f"--rgb and --depth are the same folder {rgb}: a folder gives every image in it to both; "
                         "select each kind with a quoted glob on its role word, e.g. "
                         f"--rgb '{Path(rgb) / '*_rgb.png'}' --depth '{Path(depth) / '*_depth.png'}'")
    rgbs, depths = expand(rgb, "rgb"), expand(depth, "depth")
    labs = expand(labels, "labels") if labels is not None else []
    if len(rgbs) == 1 and len(depths) == 1 and len(labs) <= 1:
        name = _strip_role(rgbs[0][0])
        return [(name, rgbs[0][1], depths[0][1], labs[0][1] if labs else None)]
    if len(rgbs) != len(depths):
        raise ValueError(f"{len(rgbs)} rgb files but {len(depths)} depth files; give one depth image per "
                         f"rgb image, with the same name")
    for strip in (False, True):
        r, d = _by_key(rgbs, "rgb", strip), _by_key(depths, "depth", strip)
        lab = _by_key(labs, "labels", strip)
        missing = sorted(set(r) ^ set(d))
        if not missing and not (lab and set(r) - set(lab)):
            break
    if missing:
        raise ValueError(f"unpaired names between --rgb and --depth: {', '.join(missing[:5])}"
                         f"{' ...' if len(missing) > 5 else ''}; files pair by name without extension "
                         f"(and without a role word such as _rgb / _depth)")
    if lab and set(r) - set(lab):
        raise ValueError(f"no ground-truth label for: {', '.join(sorted(set(r) - set(lab))[:5])}")
    names = _output_names({n: r[n] for n in sorted(r)})
    return [(names[n], r[n], d[n], lab.get(n)) for n in sorted(r)]


def _output_names(rgb_by_key: dict[str, Path]) -> dict[str, str]:
    """key -> output name: the rgb file's own name without its role word, under the key's folders.

    A glob's key is only what its wildcards matched ("001" for camA_001_rgb.png), which a second
    camera's frames share; the file's name keeps the camera ("camA_001"), so runs on camA_* and
    camB_* into one --out never write the same file. Names that still clash within a run (same
    file name in two folders) fall back to the unique key.
    """
    names = {}
    for key, path in rgb_by_key.items():
        head = key.rpartition("/")[0]
        stem = _strip_role(path.stem)
        names[key] = f"{head}/{stem}" if head else stem
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {k: (n if counts[n] == 1 else k) for k, n in names.items()}
