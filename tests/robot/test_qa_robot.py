"""QA findings on `predict --bag`: each test is one bug a new user hit."""

from __future__ import annotations

import pytest

from asymformer.cli import main

from . import bagfiles as B

TOPICS = ["--rgb-topic", B.RS_COLOR, "--depth-topic", B.RS_DEPTH, "--camera-info-topic", B.RS_INFO]


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("asymformer predict: error: "), err
    return err[0]


@pytest.mark.parametrize("where", ["same", "inside", "holding"])
def test_out_overlapping_the_input_is_refused_and_the_recording_kept(tmp_path, tiny_checkpoint, capsys, where):
    """--out equal to the input with --overwrite replaced the recording by its labelled copy (data loss)."""
    src = B.write_rosbag2(tmp_path / "data" / "rec", B.realsense(n=1))
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    out = {"same": src, "inside": src / "labelled", "holding": tmp_path / "data"}[where]
    argv = ["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), *TOPICS, "--out", str(out),
            "--overwrite", "--no-progress"]
    assert main(argv) == 2
    assert "overlaps the input recording" in _err(capsys)
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before


def test_process_bag_refuses_out_over_its_input(tmp_path, segmenter):
    from asymformer.robot import process_bag

    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=1))
    with pytest.raises(ValueError, match="overlaps the input recording"):
        process_bag(segmenter, src, src, B.RS_COLOR, B.RS_DEPTH, overwrite=True, progress=False)
    assert (src / "rec.mcap").is_file()


@pytest.mark.parametrize("namespace", ["bad ns!", "/2d/seg", "/a//b", "/seg-1"])
def test_namespace_ros_cannot_use_is_refused_before_any_work(tmp_path, tiny_checkpoint, capsys, namespace):
    """'--namespace "bad ns!"' wrote topics like '/bad ns!/labels' that ros2 bag play and rviz2 refuse."""
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=1))
    argv = ["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), *TOPICS, "--out", str(tmp_path / "o"),
            "--namespace", namespace, "--no-progress"]
    assert main(argv) == 2
    assert "is not a valid ROS topic namespace" in _err(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("namespace, prefix", [("/asymformer", "/asymformer"), ("robot1/seg/", "/robot1/seg"),
                                               ("", ""), ("/", ""), ("_private", "/_private")])
def test_namespace_prefix_normalised(namespace, prefix):
    from asymformer.robot.pipeline import topic_prefix

    assert topic_prefix(namespace) == prefix


@pytest.mark.parametrize("slop", [float("inf"), float("nan"), -0.1])
def test_pairer_refuses_slop_it_cannot_use_with_a_value_error(slop):
    """StampPairer(slop_s=inf) died with OverflowError (int(inf)) instead of the ValueError naming slop."""
    from asymformer.robot import StampPairer

    with pytest.raises(ValueError, match="slop must be a finite number"):
        StampPairer(slop_s=slop)


def test_intrinsics_of_another_resolution_are_refused_before_any_frame_file(tmp_path, tiny_checkpoint, capsys):
    """'--intrinsics 525,525,319.5,239.5' (a 640x480 calibration) on 96x64 frames silently wrote a
    cloud with the principal point far outside the image; a YAML of another size left a.png behind."""
    from asymformer.data.io import write_png

    rgb, mm = B.scene(0)
    write_png(tmp_path / "a_rgb.png", rgb)
    write_png(tmp_path / "a_depth.png", mm)
    (tmp_path / "cam.yaml").write_text("image_width: 640\nimage_height: 480\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
                                       "  data: [525, 0, 319.5, 0, 525, 239.5, 0, 0, 1]\n")
    for spec, message in [("525,525,319.5,239.5", "principal point (cx=319.5, cy=239.5) lies outside"),
                          (str(tmp_path / "cam.yaml"), "intrinsics are for 640x480 images")]:
        out = tmp_path / f"pred{len(message)}"
        assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--rgb", str(tmp_path / "a_rgb.png"),
                     "--depth", str(tmp_path / "a_depth.png"), "--out", str(out), "--intrinsics", spec,
                     "--no-progress"]) == 2
        err = _err(capsys)
        assert "--intrinsics" in err and message in err and "a_depth.png" in err
        assert not list(out.glob("a*"))  # no picture and no cloud of the refused frame
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=1))
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), *TOPICS[:4], "--out",
                 str(tmp_path / "o"), "--intrinsics", "525,525,319.5,239.5", "--no-progress"]) == 2
    assert "lies outside the colour image" in _err(capsys)
    assert not (tmp_path / "o").exists()


def test_intrinsics_principal_point_inside_the_frame_is_kept():
    from asymformer.outputs.points import Intrinsics

    Intrinsics(60.0, 61.0, 47.5, 31.5).check(64, 96)
    Intrinsics(60.0, 61.0, 0.0, 64.0).check(64, 96)  # on the border: still a plausible calibration
    with pytest.raises(ValueError, match="for another resolution"):
        Intrinsics(60.0, 61.0, 47.5, 64.5).check(64, 96)


def test_unreadable_recordings_are_one_line_with_the_repair(tmp_path, tiny_checkpoint, capsys):
    """A recorder killed mid-run leaves an MCAP without its footer: the error named no fix; a broken
    metadata.yaml printed rosbags' multi-line YAML error."""
    fox = B.write_foxglove_mcap(tmp_path / "cut.mcap", B.realsense(n=2))
    fox.write_bytes(fox.read_bytes()[: fox.stat().st_size * 6 // 10])
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "metadata.yaml").write_text("rosbag2_bagfile_information: [\n")
    for bag, message in [(fox, "mcap recover"), (tmp_path / "meta", "metadata.yaml")]:
        assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(bag), *TOPICS,
                     "--out", str(tmp_path / "o"), "--no-progress"]) == 2
        err = _err(capsys)  # exactly one line
        assert f"{bag}: cannot read this bag" in err and message in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("inside", ["", "report.json"])
def test_report_at_or_inside_the_output_bag_is_refused_before_the_work(tmp_path, tiny_checkpoint, capsys, inside):
    """--report equal to --out failed only after the whole bag was written ('cannot write ...: it is a folder')."""
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=1))
    out = tmp_path / "o"
    report = out / inside if inside else out
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), *TOPICS, "--out", str(out),
                 "--report", str(report), "--no-progress"]) == 2
    assert "--report" in (err := _err(capsys)) and "inside it" in err
    assert not out.exists()


def test_report_inside_the_out_folder_of_several_recordings_still_works(tmp_path, tiny_checkpoint):
    for name in ("a", "b"):
        B.write_rosbag2(tmp_path / "in" / name, B.realsense(n=1))
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(tmp_path / "in"), *TOPICS,
                 "--out", str(tmp_path / "out"), "--report", str(tmp_path / "out" / "run.json"), "--no-progress"]) == 0
    assert (tmp_path / "out" / "run.json").is_file() and (tmp_path / "out" / "a" / "metadata.yaml").is_file()


def test_stream_runner_refuses_multi_channel_depth_at_submit(segmenter):
    """A 3-channel (colour-mapped) depth passed submit and failed later in the worker thread."""
    import numpy as np

    from asymformer.stream import StreamRunner

    rgb, mm = B.scene(0)
    d = mm.astype(np.float32) / 1000
    with StreamRunner(segmenter, depth_unit=1.0) as runner:
        with pytest.raises(ValueError, match="depth must be one channel"):
            runner.submit(rgb, np.stack([d] * 3, -1), 1)
        runner.submit(rgb, d[..., None], 2)  # H×W×1 is one channel
        assert runner.get(timeout=30).stamp_ns == 2


def test_rerun_save_folder_suggests_an_rrd_name(tmp_path, tiny_checkpoint, capsys):
    """'--rerun-save FOLDER' suggested FOLDER/benchmark.json, which RerunView then refuses (needs .rrd)."""
    pytest.importorskip("rerun")
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=1))
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), *TOPICS, "--out",
                 str(tmp_path / "o"), "--rerun-save", str(tmp_path), "--no-progress"]) == 2
    err = _err(capsys)
    assert "--rerun-save" in err and "recording.rrd" in err and "benchmark.json" not in err


def test_out_over_a_folder_of_recordings_is_refused_naming_the_out_given(tmp_path, tiny_checkpoint, capsys):
    for name in ("a", "b"):
        B.write_rosbag2(tmp_path / "in" / name, B.realsense(n=1))
    before = sorted(p.name for p in (tmp_path / "in").rglob("*"))
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(tmp_path / "in"), *TOPICS,
                 "--out", str(tmp_path / "in"), "--overwrite", "--no-progress"]) == 2
    assert f"--out {tmp_path / 'in'}: the output bag" in _err(capsys)
    assert sorted(p.name for p in (tmp_path / "in").rglob("*")) == before


def test_one_failed_recording_of_several_is_one_line_naming_it_once(tmp_path, tiny_checkpoint, capsys):
    """The per-recording error read 'asymformer predict: /x/b: error: /x/b: no topic ...' (path twice)."""
    B.write_rosbag2(tmp_path / "in" / "a", B.realsense(n=1))
    B.write_rosbag2(tmp_path / "in" / "b", B.realsense(n=1, info=False))
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(tmp_path / "in"), *TOPICS,
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = _err(capsys)
    bad = str(tmp_path / "in" / "b")
    assert err.count(bad) == 1 and f"error: {bad}: " in err
    assert (tmp_path / "out" / "a" / "metadata.yaml").is_file() and not (tmp_path / "out" / "b").exists()


@pytest.mark.parametrize("suffix", [".mcap", ".bag", ".db3"])
def test_out_named_like_a_bag_file_is_refused_with_the_folder_name(tmp_path, tiny_checkpoint, capsys, suffix):
    """'--out lab.mcap' wrote a folder lab.mcap/ holding lab.mcap.mcap (Foxglove then fails to open 'lab.mcap')."""
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=1))
    out = tmp_path / f"lab{suffix}"
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), *TOPICS, "--out", str(out),
                 "--no-progress"]) == 2
    assert f"give a folder name, e.g. --out {tmp_path / 'lab'}" in _err(capsys)
    assert not out.exists()
    from asymformer.robot import BagWriter

    with pytest.raises(ValueError, match="rosbag2 folder"):
        BagWriter(out)


@pytest.mark.parametrize("speed", ["inf", "1e-9", "1e9", "0", "nan"])
def test_realtime_speed_out_of_range_is_one_line(tmp_path, tiny_checkpoint, capsys, speed):
    """--realtime-speed inf died with an OverflowError traceback; 1e-9 slept for years; 1e9 reported
    latencies of 2e10 ms."""
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=2))
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), *TOPICS, "--out",
                 str(tmp_path / "o"), "--realtime", "--realtime-speed", speed, "--no-progress"]) == 2
    assert "--realtime-speed must be between 0.01 and 100" in _err(capsys)
    assert not (tmp_path / "o").exists()


def test_realtime_replay_api_refuses_the_same_speeds(segmenter):
    from asymformer.robot.realtime import RealtimeReplay

    for speed in (float("inf"), 1e-9, 0.0):
        with pytest.raises(ValueError, match="between 0.01 and 100"):
            RealtimeReplay(segmenter, speed)
    assert RealtimeReplay(segmenter, 100).speed == 100.0


def test_max_depth_inf_is_one_line(tmp_path, tiny_checkpoint, capsys):
    """--max-depth inf passed the CLI check, then back_project refused it in the encode pool and the
    run died with a traceback of the pipeline's internal _Stopped."""
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=2))
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), *TOPICS, "--out",
                 str(tmp_path / "o"), "--max-depth", "inf", "--no-progress"]) == 2
    assert "--max-depth must be a positive number of metres" in _err(capsys)


def test_an_encode_error_is_raised_as_itself_not_as_the_internal_stop(tmp_path):
    """A stage error (here in the encode pool) must reach the caller as that error, whatever thread
    notices the stop first."""
    from asymformer.robot.pipeline import run_pipeline

    def encode(frame, seg):
        raise ValueError(f"bad frame {frame}")

    with pytest.raises(ValueError, match="bad frame"):
        run_pipeline(range(50), lambda f: f, lambda x: None, encode=encode, queue_size=1)


def test_options_that_would_be_ignored_are_refused(tmp_path, tiny_checkpoint, capsys):
    """--realtime-speed without --realtime, and --slop on image files, were silently ignored."""
    src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=1))
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), *TOPICS, "--out",
                 str(tmp_path / "o"), "--realtime-speed", "2", "--no-progress"]) == 2
    assert "add --realtime" in _err(capsys)
    assert not (tmp_path / "o").exists()
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--rgb", "x.png", "--depth", "y.png",
                 "--out", str(tmp_path / "p"), "--slop", "0.1"]) == 2
    assert "--slop is for --bag recordings" in _err(capsys)


def test_output_messages_takes_one_key_as_a_string(segmenter):
    """outputs="labels" was read letter by letter: "unknown outputs ['a', 'b', 'e', 'l', 's']"."""
    from asymformer.robot import MessageTypes, output_messages
    from asymformer.robot.bags import ros2_typestore

    rgb, mm = B.scene(0)
    res = segmenter(rgb, mm.astype("float32") / 1000, depth_unit=1.0)
    types = MessageTypes.from_typestore(ros2_typestore())
    msgs = output_messages(res, types.header(5, "cam"), types, outputs="labels")
    assert list(msgs) == ["labels"] and msgs["labels"].encoding == "mono8" and msgs["labels"].header.frame_id == "cam"


@pytest.mark.parametrize("where", ["file", "inside"])
def test_report_over_an_input_recording_is_refused(tmp_path, tiny_checkpoint, capsys, where):
    """'--bag rec.mcap --report rec.mcap' replaced the recording by the JSON report."""
    if where == "file":
        src = B.write_foxglove_mcap(tmp_path / "rec.mcap", B.realsense(n=1))
        report = src
    else:
        src = B.write_rosbag2(tmp_path / "rec", B.realsense(n=1))
        report = src / "report.json"
    before = src.read_bytes() if src.is_file() else sorted(p.name for p in src.iterdir())
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--bag", str(src), *TOPICS, "--out",
                 str(tmp_path / "o"), "--report", str(report), "--no-progress"]) == 2
    assert "is an input recording or inside one" in _err(capsys)
    assert (src.read_bytes() if src.is_file() else sorted(p.name for p in src.iterdir())) == before
