"""The one way tests run ROS 2 processes: inside a private network namespace.

DDS discovery multicasts; a test must never talk on the machine's network. Each scenario is one
driver process (tests/robot/ros2_driver.py) started under `unshare -n` (root) or `unshare -rn`,
which brings loopback up and exports ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, then starts the
node processes and talks to them over DDS. rclpy is never imported in the pytest process.

Where ROS 2 Kilted's PyPI wheels cannot exist (not CPython 3.11 on x86-64 Linux) the tests are
skipped with that reason; where they can but are missing, or where the namespace cannot be
created, the tests FAIL with the reason (install `.[ros2]`; run where unshare is allowed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("ros2_driver.py")
WHEELS_EXIST = (sys.implementation.name == "cpython" and sys.version_info[:2] == (3, 11)
                and platform.machine() == "x86_64" and sys.platform == "linux")
NO_WHEELS = "ROS 2 Kilted's rclpy wheels exist only for CPython 3.11 on x86-64 Linux"
requires_ros2 = pytest.mark.skipif(not WHEELS_EXIST, reason=NO_WHEELS)


def namespace_command(inner: str) -> list[str]:
    """argv running the shell command `inner` in a new network namespace with only loopback up."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("cannot create a private network namespace for the ROS 2 tests: `unshare` (util-linux) is "
                    "not installed")
    flags = "-n" if os.geteuid() == 0 else "-rn"
    return [unshare, flags, "bash", "-c",
            f"set -e; ip link set lo up; export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST; {inner}"]


def check_namespace() -> None:
    """Fail (never skip) with the reason when no namespace can be made here."""
    try:
        proc = subprocess.run(namespace_command("ip -o link show | wc -l"), capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"cannot create a private network namespace for the ROS 2 tests: {exc}")
    if proc.returncode != 0 or proc.stdout.strip() != "1":
        pytest.fail(f"cannot create a private network namespace for the ROS 2 tests (unshare -n / -rn): "
                    f"{(proc.stderr or proc.stdout).strip()[-300:]}")


JAZZY_WHEELS = ("ros-jazzy-rclpy", "ros-jazzy-rmw-fastrtps-cpp", "ros-jazzy-sensor-msgs", "numpy")


def jazzy_python() -> tuple[str | None, str]:
    """(python, "") of a venv with ROS 2 Jazzy's wheels, or (None, why not). Jazzy must not share
    the test venv with Kilted, so it lives in its own: $ASYMFORMER_JAZZY_VENV, default
    ~/.cache/asymformer/ros2-jazzy-venv, made here on first use (pip, about 45 s and 270 MB; keep
    that directory between CI runs). Offline, the interoperability test is skipped, saying so."""
    if not WHEELS_EXIST:
        return None, NO_WHEELS
    venv = Path(os.environ.get("ASYMFORMER_JAZZY_VENV", Path.home() / ".cache" / "asymformer" / "ros2-jazzy-venv"))
    python = venv / "bin" / "python"
    ok = venv / ".installed"
    if not ok.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True,
                           timeout=120)
            proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *JAZZY_WHEELS],
                                  capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"could not make a venv for ROS 2 Jazzy's wheels at {venv}: {exc}"
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or [""]
            return None, f"ROS 2 Jazzy's wheels could not be installed into {venv} (offline?): {tail[0][:200]}"
        ok.touch()
    return str(python), ""


def run_scenario(name: str, checkpoint, out_dir: Path, timeout: float = 240, env: dict | None = None) -> dict:
    """Run tests/robot/ros2_scenarios.<name> in a fresh namespace; returns its result.json."""
    if importlib.util.find_spec("rclpy") is None:
        pytest.fail("rclpy is not installed although its wheels exist for this Python: pip install -e '.[ros2]' "
                    "(make setup does)")
    check_namespace()
    out_dir.mkdir(parents=True, exist_ok=True)
    log_dir = out_dir / "ros_log"
    extra = "".join(f" {k}={v}" for k, v in (env or {}).items())
    inner = (f"export ROS_LOG_DIR={log_dir} PYTHONPATH={ROOT}{extra}; cd {ROOT}; "
             f"exec {sys.executable} {DRIVER} {name} {out_dir} {checkpoint}")
    try:
        proc = subprocess.run(namespace_command(inner), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ROS 2 scenario {name!r} did not finish within {timeout} s")
    path = out_dir / "result.json"
    if not path.exists():
        pytest.fail(f"ROS 2 scenario {name!r} wrote no result (exit {proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(path.read_text())
    nodes = json.dumps(result.get("nodes"), indent=1)[-4000:]
    assert "driver_error" not in result, f"{result.get('driver_error')}\n{nodes}"
    return result
