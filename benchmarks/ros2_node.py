"""The ROS 2 node on the real rclpy under a 30 FPS camera (JSON). Runs itself inside a private
network namespace (unshare -n / -rn, loopback only, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST):
DDS never reaches the machine's network.

    python benchmarks/ros2_node.py [--models asymformer_b0_a,asymformer_b0_t] [--size 480x640]
        [--frames 900] [--fps 30] [--threads 2] [--alone-s 15] [--transports raw,compressed]
        [--camera-profile asymformer|default] [--node-profile asymformer|default]
        [--subscriber node|plain|plain-reliable] [--node-env NAME=VALUE] [--skip-alone]
        [--rss-every 100]

For each model (random weights, 40 classes) and transport (raw rgb8 + 16UC1; JPEG +
compressedDepth PNG), a camera in this process publishes --frames frames at --fps (reliable,
as realsense2_camera does) to a node process (`python -m asymformer.robot.node`, outputs labels
only); a subscriber here measures the latency from the camera stamp to the label image received.
Reported: published, received / processed / dropped (the node's closing line), latency p50 / p99,
the node's model ms and this machine's decode ms (the same frames), the node's resident memory
after the warm-up and at the end, the CPU cores the camera process and the node used during the
camera run (`cpu_cores`), and the streaming runtime alone (StreamRunner, same frames decoded at
capture, same rate, labels only as the node) for the processed-rate ratio. Goals (issue 27): p99 <= 1.5 x
(model + decode) + 15 ms (with the model time alone, and with the node's own from /diagnostics in the
same run: `p99_bound_in_run_ms`); received >= 99 % of published; processed >= 0.9 x the runtime alone;
resident memory flat (within 5 %) over 10,000 frames (`--frames 10000`: the node's RSS is sampled
every --rss-every frames, `rss_mb` in the JSON).

Fast DDS: the camera here uses the node's profile (robot/fastdds_large_images.xml, a 32 MB
shared-memory segment) unless `--camera-profile default` (Fast DDS's own 512 KB segment, as a
camera driver started without it); the node uses it unless `--node-profile default`.
`--subscriber plain` replaces the node by a plain rclpy subscriber with the node's QoS (best
effort, depth 5) and no model: what DDS alone delivers (`plain-reliable`: a reliable one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def in_namespace() -> None:
    """Re-run this script in a fresh network namespace unless already inside one."""
    if os.environ.get("ASYMFORMER_NETNS") == "1":
        return
    flags = "-n" if os.geteuid() == 0 else "-rn"
    inner = ("set -e; ip link set lo up; export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ASYMFORMER_NETNS=1; "
             f"exec {sys.executable} {' '.join(map(repr, sys.argv))}")
    sys.exit(subprocess.call([shutil.which("unshare") or "unshare", flags, "bash", "-c", inner]))


def listen(ns: str, out: str) -> None:
    """--subscriber plain / plain-reliable: count the colour and depth messages reaching a plain
    subscriber (the node's input QoS: best effort, depth 5; or reliable) and the colour frames'
    latency (camera stamp -> callback), until SIGINT; JSON to `out`."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import ReliabilityPolicy

    from asymformer.robot.ros_shell import qos_profiles

    rclpy.init()
    node = rclpy.create_node("plain_subscriber")
    qos = qos_profiles()[0]
    if os.environ.get("ASYMFORMER_BENCH_RELIABLE") == "1":
        qos.reliability = ReliabilityPolicy.RELIABLE
    got, lat = {"rgb": 0, "depth": 0}, []

    def on_message(topic, m):
        got[topic] += 1
        if topic == "rgb":
            lat.append((time.time_ns() - (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)) / 1e6)

    kind = _image_class(os.environ["ASYMFORMER_BENCH_KIND"])
    for topic in got:
        node.create_subscription(kind, f"{ns}/{topic}", lambda m, t=topic: on_message(t, m), qos)
    print("model ready (plain subscriber)", file=sys.stderr, flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    pct = {f"latency_p{q}_ms": round(float(np.percentile(lat, q)), 1) if lat else None for q in (50, 99)}
    Path(out).write_text(json.dumps({**got, **pct}))
    rclpy.try_shutdown()


def _image_class(kind: str):
    from sensor_msgs.msg import CompressedImage, Image

    return Image if kind == "raw" else CompressedImage


def make_frames(h: int, w: int, n: int = 30):
    """n frames of a moving synthetic scene (smooth: JPEG sizes like a camera's)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(n):
        rgb = np.stack([(xx + 8 * i) % 256, (yy * 0.5 + 4 * i) % 256, (xx + yy) % 256], -1).astype(np.uint8)
        mm = (800 + 3 * xx + 2 * yy + 10 * i).astype(np.uint16)
        mm[: h // 20] = 0
        out.append((rgb, mm))
    return out


def messages(frames, kind: str):
    """rclpy messages (stamps set at publish time) for each frame."""
    from sensor_msgs.msg import CompressedImage, Image

    from tests.robot import rosmsgs as R

    msgs = []
    for rgb, mm in frames:
        h, w = mm.shape
        if kind == "raw":
            c = Image(height=h, width=w, encoding="rgb8", step=3 * w, data=rgb.tobytes())
            d = Image(height=h, width=w, encoding="16UC1", step=2 * w, data=mm.astype("<u2").tobytes())
        else:
            c = CompressedImage(format="rgb8; jpeg compressed bgr8", data=R.encode(rgb, "JPEG", quality=90))
            cd = R.compressed_depth_16(mm, "png")
            d = CompressedImage(format=cd.format, data=bytes(cd.data))
        for m in (c, d):
            m.header.frame_id = "camera_color_optical_frame"
        msgs.append((c, d))
    return msgs


def decode_ms(msgs) -> float:
    from asymformer.robot.messages import decode_color, decode_depth

    times = []
    for c, d in msgs[:20]:
        t0 = time.perf_counter()
        decode_color(c)
        decode_depth(d)
        times.append(1000 * (time.perf_counter() - t0))
    return round(float(np.median(times)), 2)


def rss_mb(pid: int) -> float:
    return memory_mb(pid)["VmRSS"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict:
    """Resident memory (MB) and its parts: anonymous (heap, torch), shared memory (DDS segments),
    file-backed (libraries), and the thread count (each may hold a glibc arena)."""
    keys = ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads")
    with open(f"/proc/{pid}/status") as f:
        found = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f) if k in keys}
    return {k: (v if k == "Threads" else round(v / 1024, 1)) for k, v in found.items()}


DIAG_KEYS = ("latency p50 (ms)", "latency p99 (ms)", "model (ms)", "model p99 (ms)", "pre-processing (ms)",
             "post-processing (ms)", "latency minus model, p99 (ms)")


def node_command(args, ns: str, ckpt: Path, h: int, w: int, out: str) -> tuple[list[str], dict]:
    """argv and environment of the process under test: the node, or a plain subscriber."""
    env = {k: v for k, v in os.environ.items() if k != "FASTDDS_DEFAULT_PROFILES_FILE"}  # the camera's, not its
    env["OMP_NUM_THREADS"] = str(args.threads)
    if args.node_profile == "default":
        env["ASYMFORMER_FASTDDS_PROFILE"] = "0"
    env.update(kv.split("=", 1) for kv in args.node_env)
    if args.subscriber != "node":
        env["ASYMFORMER_BENCH_KIND"] = args.kind
        env["ASYMFORMER_BENCH_RELIABLE"] = str(int(args.subscriber == "plain-reliable"))
        return [sys.executable, __file__, "--listen", ns, out], env
    return [sys.executable, "-m", "asymformer.robot.node", "--ros-args", "-r", f"__ns:={ns}",
            "-p", f"checkpoint:={ckpt}", "-p", "device:=cpu", "-p", "outputs:=[labels]",
            "-p", f"size:={h}x{w}"], env


def run_node(node, ckpt: Path, msgs, args, h: int, w: int) -> dict:
    """One node process, one camera run; latency measured at the label subscriber."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
    kind = type(msgs[0][0])
    ns = f"/bench{int(time.time() * 1000) % 100000}"
    pubs = [node.create_publisher(kind, f"{ns}/rgb", reliable), node.create_publisher(kind, f"{ns}/depth", reliable),
            node.create_publisher(CameraInfo, f"{ns}/camera_info", reliable)]
    lat, lock = [], threading.Lock()

    def on_label(m):
        now = time.time_ns()
        with lock:
            lat.append((now - (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)) / 1e6)

    sub = node.create_subscription(Image, f"{ns}/labels", on_label, reliable)
    node_model_ms = []  # the node's own "model (ms)" from /diagnostics: its model time under this run's load
    last_diag = {}  # the node's last /diagnostics values during the camera run (pre / post / model p99 / ...)

    def on_diag(m):
        for st in m.status:
            values = {kv.key: kv.value for kv in st.values}
            if values.get("model (ms)"):
                node_model_ms.append(float(values["model (ms)"]))
                last_diag.clear()
                last_diag.update(values)
    diag = node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    counts = Path(tempfile.mkdtemp()) / "plain.json"
    argv, env = node_command(args, ns, ckpt, h, w, str(counts))
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    lines = []
    threading.Thread(target=lambda: [lines.append(x.rstrip()) for x in proc.stderr], daemon=True).start()
    deadline = time.monotonic() + 300
    wanted = pubs[:2] if args.subscriber != "node" else pubs
    while not any("model ready" in x for x in lines) or not all(p.get_subscription_count() for p in wanted):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("node did not start:\n" + "\n".join(lines[-10:]))
        time.sleep(0.1)
    time.sleep(1.0)
    parts = [(0, memory_mb(proc.pid))]
    rss, window = [(0, parts[0][1]["VmRSS"], parts[0][1]["VmRSS"])], []
    info = CameraInfo(width=w, height=h, k=[500.0, 0, w / 2, 0, 500.0, h / 2, 0, 0, 1.0])
    period = 1.0 / args.fps
    t_next = time.perf_counter()
    late = 0
    cpu0 = (cpu_seconds(os.getpid()), cpu_seconds(proc.pid), time.perf_counter())
    for i in range(args.frames):
        c, d = msgs[i % len(msgs)]
        stamp = time.time_ns()
        for m in (c, d, info):
            m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp, 10**9)
        pubs[2].publish(info)
        pubs[0].publish(c)
        pubs[1].publish(d)
        if (i + 1) % 10 == 0:  # RSS swings by one inference's activations: the window's median
            window.append(rss_mb(proc.pid))
        if (i + 1) % args.rss_every == 0:
            parts.append((i + 1, memory_mb(proc.pid)))
            rss.append((i + 1, round(float(np.median(window)), 1), round(max(window), 1)))
            window = []
        t_next += period
        late += t_next < time.perf_counter()
        time.sleep(max(0.0, t_next - time.perf_counter()))
    wall = time.perf_counter() - cpu0[2]  # cores busy during the camera run: where the 2 cores went
    cores = {"camera_process": round((cpu_seconds(os.getpid()) - cpu0[0]) / wall, 2),
             "node_process": round((cpu_seconds(proc.pid) - cpu0[1]) / wall, 2)}
    time.sleep(2.0)
    end = rss_mb(proc.pid)
    proc.send_signal(2)
    proc.wait(60)
    time.sleep(0.2)
    line = next((x for x in lines if x.startswith("asymformer node: received")), "")
    words = line.replace(",", "").split()

    def num(key):
        return int(words[words.index(key) + 1]) if key in words else None

    for p in pubs:
        node.destroy_publisher(p)
    node.destroy_subscription(sub)
    node.destroy_subscription(diag)
    model = [x for x in lines if "model ready" in x]
    out = {"published": args.frames, "published_late": late, "received": num("received"),
           "processed": num("processed"), "dropped": num("dropped"), "labels_received": len(lat),
           "closing_line": line, "dds_profile": next((x.split("]: ", 1)[-1] for x in lines if "Fast DDS" in x), None),
           "latency_p50_ms": round(float(np.percentile(lat, 50)), 1) if lat else None,
           "latency_p99_ms": round(float(np.percentile(lat, 99)), 1) if lat else None,
           "node_rss_mb_after_warm_up": rss[0][1], "node_rss_mb_end": round(end, 1),
           "rss_mb": rss, "memory_parts": parts,  # rss_mb: [frame, median, max] of a sample every 10 frames
           "warm_up": model[0].split(": ", 1)[-1] if model else None, "exit_code": proc.returncode,
           "model_ms_in_run": round(float(np.median(node_model_ms)), 1) if node_model_ms else None,
           "diagnostics_last": {k: last_diag[k] for k in DIAG_KEYS if k in last_diag}, "cpu_cores": cores}
    got = json.loads(counts.read_text()) if counts.exists() else {}
    shutil.rmtree(counts.parent, ignore_errors=True)
    if args.subscriber != "node":
        out.update(received=got.get("rgb"), received_depth=got.get("depth"), processed=None,
                   latency_p50_ms=got.get("latency_p50_ms"), latency_p99_ms=got.get("latency_p99_ms"))
    return out


def runtime_alone(ckpt: Path, msgs, args, h: int, w: int) -> dict:
    """StreamRunner fed the same messages, decoded at capture, at the same rate."""
    import torch

    from asymformer import Segmenter
    from asymformer.robot.messages import decode_color, decode_depth
    from asymformer.stream import StreamRunner

    torch.set_num_threads(args.threads)
    seg = Segmenter(ckpt, device="cpu", size=(h, w))
    runner = StreamRunner(seg, copy=False, depth_unit=1.0, confidence=False)  # the node's work: labels only
    runner.warm_up(decode_color(msgs[0][0]), decode_depth(msgs[0][1]))
    n = int(args.alone_s * args.fps)
    t_next = time.perf_counter()
    cpu0, wall0 = time.process_time(), t_next
    for i in range(n):
        c, d = msgs[i % len(msgs)]
        runner.submit(decode_color(c), decode_depth(d), time.time_ns())
        t_next += 1.0 / args.fps
        time.sleep(max(0.0, t_next - time.perf_counter()))
    cores = round((time.process_time() - cpu0) / (time.perf_counter() - wall0), 2)  # this process, all threads
    while runner.get(timeout=0.0) is not None:
        pass
    stats = runner.close()
    return {"submitted": n, "processed": stats["processed"], "processed_fraction": round(stats["processed"] / n, 4),
            "model_ms": stats.get("model_ms"), "latency_p50_ms": stats.get("latency_p50_ms"),
            "latency_p99_ms": stats.get("latency_p99_ms"), "cpu_cores": cores}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--listen" and os.environ.get("ASYMFORMER_NETNS") == "1":
        # the plain subscriber: a child of the benchmark, inside its private network namespace
        sys.path.insert(0, str(ROOT))
        return listen(sys.argv[2], sys.argv[3])
    in_namespace()
    sys.path.insert(0, str(ROOT))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="asymformer_b0_a,asymformer_b0_t")
    p.add_argument("--size", default="480x640")
    p.add_argument("--frames", type=int, default=900)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--alone-s", type=float, default=15.0)
    p.add_argument("--transports", default="raw,compressed")
    p.add_argument("--camera-profile", choices=("asymformer", "default"), default="asymformer",
                   help="the camera's Fast DDS profile: the node's (32 MB shared memory) or Fast DDS's default")
    p.add_argument("--node-profile", choices=("asymformer", "default"), default="asymformer")
    p.add_argument("--subscriber", choices=("node", "plain", "plain-reliable"), default="node",
                   help="plain: a plain rclpy subscriber with the node's QoS and no model (DDS alone)")
    p.add_argument("--rss-every", type=int, default=100,
                   help="report the node's RSS every N frames (the median and max of a sample every 10 frames)")
    p.add_argument("--node-env", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment variable for the node's process (e.g. MALLOC_ARENA_MAX=2)")
    p.add_argument("--skip-alone", action="store_true", help="no runtime-alone comparison")
    args = p.parse_args()
    from asymformer.robot.dds_profile import PROFILE

    if args.camera_profile == "asymformer":  # before rclpy makes this process's participant
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    else:
        os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    h, w = (int(v) for v in args.size.lower().split("x"))

    import rclpy
    import torch
    from rclpy.executors import SingleThreadedExecutor

    import asymformer
    from asymformer.deploy.cpu import cpu_info

    rclpy.init()
    node = rclpy.create_node("ros2_node_benchmark")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    spinner = threading.Thread(target=ex.spin, daemon=True)
    spinner.start()
    frames = make_frames(h, w)
    report = {"cpu": cpu_info(), "size": [h, w], "fps": args.fps, "threads": args.threads, "runs": [],
              "camera_profile": args.camera_profile, "node_profile": args.node_profile,
              "subscriber": args.subscriber, "node_env": args.node_env, "load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            torch.manual_seed(0)
            ckpt = Path(tmp) / f"{name}.safetensors"
            asymformer.save_model(asymformer.create_model(name, num_classes=40).eval(), ckpt,
                                  normalization="nyuv2_official")
            for transport in args.transports.split(","):
                msgs = messages(frames, transport)
                args.kind = transport
                run = {"model": name, "transport": transport, "decode_ms": decode_ms(msgs),
                       "load_average_before": os.getloadavg()}
                run["node"] = run_node(node, ckpt, msgs, args, h, w)
                run["load_average_after"] = os.getloadavg()
                skip = args.skip_alone or args.subscriber != "node"
                run["alone"] = {"model_ms": None, "processed_fraction": 0.0} if skip else \
                    runtime_alone(ckpt, msgs, args, h, w)
                node_rate = (run["node"]["processed"] or 0) / args.frames
                alone_ms = run["alone"]["model_ms"]
                bound = 1.5 * (alone_ms + run["decode_ms"]) + 15 if alone_ms else None  # None: alone skipped
                # The same bound on the node's own model time in this run (/diagnostics): on a machine
                # whose cores the camera and DDS share, the model is slower there than alone.
                in_run = run["node"].get("model_ms_in_run")
                bound_in_run = 1.5 * (in_run + run["decode_ms"]) + 15 if in_run else None
                run["goals"] = {
                    "p99_bound_ms": round(bound, 1) if bound else None,
                    "p99_within_bound": (run["node"]["latency_p99_ms"] or 1e9) <= bound if bound else None,
                    "p99_bound_in_run_ms": round(bound_in_run, 1) if bound_in_run else None,
                    "p99_within_bound_in_run": (run["node"]["latency_p99_ms"] or 1e9) <= bound_in_run
                    if bound_in_run else None,
                    "received_fraction": round((run["node"]["received"] or 0) / args.frames, 4),
                    "processed_vs_alone": round(node_rate / run["alone"]["processed_fraction"], 3)
                    if run["alone"]["processed_fraction"] else None,
                }
                report["runs"].append(run)
                print(json.dumps(run), file=sys.stderr, flush=True)
    # Stop spinning and wait for it before rclpy goes: a spin thread still inside rclpy's C++ wait at
    # interpreter exit ended one run with "terminate called without an active exception".
    ex.shutdown(timeout_sec=5)
    spinner.join(timeout=5)
    node.destroy_node()
    rclpy.try_shutdown()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
