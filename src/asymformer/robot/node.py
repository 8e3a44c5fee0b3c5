"""The ROS 2 node: `python -m asymformer.robot.node [--lifecycle] --ros-args -p
checkpoint:=model.safetensors -r rgb:=/camera/camera/color/image_raw
-r depth:=/camera/camera/aligned_depth_to_color/image_raw -r camera_info:=/camera/camera/color/camera_info`.

A thin rclpy shell (the wiring is robot/ros_shell.py; every decision lives in robot/live.py,
robot/node_settings.py and robot/counting.py, tested without ROS). rclpy comes from a ROS 2
installation (source its setup) or, for CPython 3.11 on x86-64 Linux, from PyPI
(`pip install 'asymformer[ros2]'`: ROS 2 Kilted's wheels); it is imported only when the node
starts, and without it the command prints one line saying how to get it.

Inputs (relative names, remappable): `rgb` (Image or CompressedImage), `depth` (Image 16UC1 /
32FC1, or CompressedImage compressedDepth), `camera_info` (CameraInfo). The message class of
each image topic is read from the graph once the topic appears. Outputs: `labels`,
`confidence`, `overlay`, `points` (each switchable with the `outputs` parameter), `class_info`
(latched JSON with names and colours), all with the colour frame's header, and `/diagnostics`
(1 Hz). Subscriptions are best effort with depth 5 (compatible with reliable and best-effort
cameras; only the newest pair is segmented, older ones are counted as stale); publishers are
reliable with depth 1 (rviz's default subscriptions match).

Plain mode configures and activates at once: the model is loaded before spinning and warmed up
off the executor (pairs meanwhile are dropped and counted). `--lifecycle` makes it a managed
node driven through `<node>/change_state` (configure = load and warm, activate = publish,
deactivate = stop publishing, cleanup = free the model). Ctrl-C prints every frame's fate and the
latency, and exits 0.

Fast DDS: the node uses robot/fastdds_large_images.xml (a shared-memory segment that holds raw
camera frames) unless the user configured Fast DDS (robot/dds_profile.py); `--fastdds-profile`
prints that file's path for the camera's process. The parameters are checked before torch loads.
"""

from __future__ import annotations

import os
import sys

NODE_NAME = "asymformer"
NO_ROS = ("asymformer node: rclpy is not importable; source your ROS 2 setup first (e.g. source "
          "/opt/ros/jazzy/setup.bash), or on CPython 3.11 x86-64 Linux: pip install 'asymformer[ros2]'")
SETUP_ERRORS = (ValueError, FileNotFoundError, ImportError, OSError)


def _import_rclpy():
    try:
        import rclpy
        import rclpy.executors
        import rclpy.node
        import rclpy.qos
    except ImportError:
        return None
    return rclpy


def _plain_node(rclpy):
    from .ros_shell import NodeShell

    node = rclpy.node.Node(NODE_NAME)
    try:
        return node, NodeShell(node)
    except BaseException:
        node.destroy_node()
        raise


def _lifecycle_node(rclpy):
    """A LifecycleNode whose transitions call the shell; a failed configure is logged in one line
    and reported to the lifecycle manager as FAILURE (the node stays unconfigured)."""
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

    from .ros_shell import NodeShell

    class Managed(LifecycleNode):
        shell: NodeShell

        def on_configure(self, state):
            try:
                self.shell.configure()
            except SETUP_ERRORS as exc:
                self.shell.log("error", f"configure failed: {exc}")
                self.shell.cleanup()
                return TransitionCallbackReturn.FAILURE
            return TransitionCallbackReturn.SUCCESS

        def on_activate(self, state):
            self.shell.activate()
            return super().on_activate(state)

        def on_deactivate(self, state):
            self.shell.deactivate()
            return super().on_deactivate(state)

        def on_cleanup(self, state):
            from .counting import closing_line

            stats = self.shell.cleanup()
            if stats is not None:
                self.shell.log("info", f"cleaned up: {closing_line(stats)}")
            return TransitionCallbackReturn.SUCCESS

        def on_shutdown(self, state):
            self.shell.deactivate()
            return TransitionCallbackReturn.SUCCESS

    node = Managed(NODE_NAME)
    try:
        node.shell = NodeShell(node, lifecycle=True)
    except BaseException:
        node.destroy_node()
        raise
    return node, node.shell


def main(argv=None) -> int:
    from .dds_profile import PROFILE, apply

    argv = list(sys.argv if argv is None else argv)
    if "--fastdds-profile" in argv:  # for the camera's process: export FASTDDS_DEFAULT_PROFILES_FILE=$(...)
        print(PROFILE)
        return 0
    lifecycle = "--lifecycle" in argv
    argv = [a for a in argv if a != "--lifecycle"]
    rclpy = _import_rclpy()
    if rclpy is None:
        print(NO_ROS, file=sys.stderr)
        return 2
    dds_line = apply()  # before rclpy.init: Fast DDS reads its profile when rmw makes the participant
    rclpy.init(args=argv)
    node = shell = None
    code = 0
    try:
        node, shell = (_lifecycle_node if lifecycle else _plain_node)(rclpy)
        shell.log("info", dds_line)
        if not lifecycle:  # configure and activate at once; the warm-up runs off the executor
            shell.configure()
            shell.connect()
            shell.activate()
        rclpy.spin(node)
    except SETUP_ERRORS as exc:
        print(f"asymformer node: {exc}", file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass  # Ctrl-C (rclpy turns SIGINT into a shutdown of the context): a normal stop
    except Exception:
        if rclpy.ok():
            raise
        # Ctrl-C while starting: rclpy shut the context down under a call in progress
    finally:
        if shell is not None and shell.error:
            code = 2  # a setup error found while spinning, logged in one line
        if shell is not None:
            stats = shell.cleanup()
            if stats is not None and code == 0:
                from .counting import closing_line

                print(f"asymformer node: {closing_line(stats)}", file=sys.stderr, flush=True)
        if node is not None:
            try:
                node.destroy_node()
            except Exception:  # noqa: BLE001 - the context may already be gone after Ctrl-C
                pass
        rclpy.try_shutdown()
    if shell is not None and shell.busy:  # Ctrl-C during the warm-up: torch must not run into interpreter exit
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
