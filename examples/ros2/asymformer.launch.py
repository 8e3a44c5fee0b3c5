"""Launch an Intel RealSense camera (realsense2_camera, depth aligned to colour) and the asymformer node.

    ros2 launch examples/ros2/asymformer.launch.py checkpoint:=/path/to/model.safetensors \
        [device:=cuda] [size:=480x640] [outputs:=labels,overlay,points] [camera:=false]

The node is started as `python3 -m asymformer.robot.node` (asymformer is a pip package, not a
colcon one), in the same environment as the sourced ROS 2 setup: install asymformer into the
Python that ROS 2 uses. The remappings connect it to realsense2_camera's default topics (4.5x
wrapper: camera_namespace `camera`, camera_name `camera`); change them for another camera.
With camera:=false only the node starts (e.g. for a camera launched elsewhere, or a bag played
with `ros2 bag play`). Not yet run on a ROS 2 installation by us: see docs/live.md.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

CAMERA = "/camera/camera"
REMAPS = {"rgb": f"{CAMERA}/color/image_raw", "depth": f"{CAMERA}/aligned_depth_to_color/image_raw",
          "camera_info": f"{CAMERA}/color/camera_info"}
ARGS = {"checkpoint": ("", "model file (.safetensors or the official .pth)"),
        "device": ("auto", "cpu, cuda, cuda:1 or auto"),
        "precision": ("fp32", "fp32, or on the CPU int8 / bf16"),
        "size": ("", "run the model at HxW (empty: the frame's own size)"),
        "outputs": ("labels,confidence,overlay,points", "comma list of the topics to publish"),
        "camera": ("true", "also start realsense2_camera with aligned depth")}


def generate_launch_description():
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGS.items()]
    camera = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("realsense2_camera"), "launch",
                                                            "rs_launch.py"])),
        launch_arguments={"align_depth.enable": "true"}.items(),
        condition=IfCondition(LaunchConfiguration("camera")))
    cmd = ["python3", "-m", "asymformer.robot.node", "--ros-args"]
    for role, topic in REMAPS.items():
        cmd += ["-r", f"{role}:={topic}"]
    for name in ("checkpoint", "device", "precision", "size"):  # quoted: YAML strings, '' included
        cmd += ["-p", [f"{name}:='", LaunchConfiguration(name), "'"]]
    cmd += ["-p", ["outputs:=[", LaunchConfiguration("outputs"), "]"]]  # a string array parameter
    node = ExecuteProcess(cmd=cmd, output="screen", emulate_tty=True)
    return LaunchDescription([*args, camera, node])
