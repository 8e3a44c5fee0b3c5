"""Which Fast DDS profile a node process uses: ours for camera-sized messages, unless the user
chose their own. Without ROS (the decision is made before rclpy is imported).

Why: Fast DDS (ROS 2's default middleware) moves data between processes on one machine through
a shared-memory segment that each publishing participant owns, 512 KB by default. A raw 480×640
frame (rgb8 0.9 MB, 16UC1 0.6 MB, 32FC1 1.2 MB) does not fit, its fragments overwrite each other
before a best-effort subscriber reads them, and 30-70 % of the frames are lost (benchmarks/
RESULTS.md, issue 27). `fastdds_large_images.xml` gives the participant a 32 MB segment and
otherwise Fast DDS's default transports; QoS stays as ROS sets it.

The segment belongs to the publisher, so the profile helps the node's OUTPUTS; for its inputs the
camera process must use it too (docs/live.md): `python -m asymformer.robot.node --fastdds-profile`
prints its path for FASTDDS_DEFAULT_PROFILES_FILE.
"""

from __future__ import annotations

import os
from pathlib import Path

PROFILE = Path(__file__).with_name("fastdds_large_images.xml")
OFF = "ASYMFORMER_FASTDDS_PROFILE"  # =0 turns ours off
# a user who set any of these configured Fast DDS themselves: theirs wins, always
USER_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE", "RMW_FASTRTPS_USE_QOS_FROM_XML",
                  "FASTDDS_BUILTIN_TRANSPORTS")
USER_FILES = ("DEFAULT_FASTDDS_PROFILES.xml", "DEFAULT_FASTRTPS_PROFILES.xml")  # Fast DDS loads these from the cwd
FAST_DDS = ("rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")  # "" / unset: ROS 2's default, Fast DDS


def choose(environ, cwd: str | os.PathLike = ".") -> tuple[dict[str, str], str]:
    """(environment variables to set, one line saying which profile the node uses and why)."""
    rmw = environ.get("RMW_IMPLEMENTATION", "").strip()
    if rmw and rmw not in FAST_DDS:
        return {}, f"middleware {rmw}: asymformer's Fast DDS profile does not apply"
    if environ.get(OFF, "").strip().lower() in ("0", "off", "false", "no"):
        return {}, f"Fast DDS: its default transports ({OFF}={environ[OFF]}; large raw images may be lost)"
    for name in USER_VARIABLES:
        if environ.get(name, "").strip():
            return {}, f"Fast DDS: your configuration ({name}={environ[name]})"
    for name in USER_FILES:
        if (Path(cwd) / name).is_file():
            return {}, f"Fast DDS: your profile ./{name}"
    return ({"FASTDDS_DEFAULT_PROFILES_FILE": str(PROFILE)},
            f"Fast DDS: asymformer's profile for large images ({PROFILE.name}: 32 MB shared-memory segment; "
            f"{OFF}=0 turns it off)")


def apply(environ=None, cwd: str | os.PathLike = ".") -> str:
    """Set the profile in this process's environment (before rclpy creates its participant);
    returns the line to log."""
    environ = os.environ if environ is None else environ
    changes, line = choose(environ, cwd)
    environ.update(changes)
    return line
