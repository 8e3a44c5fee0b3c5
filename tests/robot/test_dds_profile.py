"""The node's Fast DDS profile choice (robot/dds_profile.py), without ROS: ours by default where
the middleware is Fast DDS, never over the user's own configuration, off on request. The profile
itself over real DDS: tests/robot/test_node.py (raw 480×640 frames all received)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from asymformer.robot import dds_profile, node

NS = {"d": "http://www.eprosima.com"}


def test_ours_by_default_on_fast_dds(tmp_path):
    for env in ({}, {"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}, {"RMW_IMPLEMENTATION": "rmw_fastrtps_dynamic_cpp"}):
        changes, line = dds_profile.choose(env, tmp_path)
        assert changes == {"FASTDDS_DEFAULT_PROFILES_FILE": str(dds_profile.PROFILE)}, env
        assert "32 MB" in line and "ASYMFORMER_FASTDDS_PROFILE=0 turns it off" in line


@pytest.mark.parametrize("env", [
    {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/robot/dds.xml"}, {"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/robot/dds.xml"},
    {"RMW_FASTRTPS_USE_QOS_FROM_XML": "1"}, {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"},
])
def test_never_over_the_users_own(env, tmp_path):
    changes, line = dds_profile.choose(env, tmp_path)
    assert changes == {} and "your configuration" in line and next(iter(env.values())) in line


def test_a_profile_file_in_the_working_directory_is_the_users(tmp_path):
    (tmp_path / "DEFAULT_FASTDDS_PROFILES.xml").write_text("<dds/>")
    assert dds_profile.choose({}, tmp_path) == ({}, "Fast DDS: your profile ./DEFAULT_FASTDDS_PROFILES.xml")


def test_off_switch_and_other_middleware(tmp_path):
    changes, line = dds_profile.choose({"ASYMFORMER_FASTDDS_PROFILE": "0"}, tmp_path)
    assert changes == {} and "default transports" in line
    changes, line = dds_profile.choose({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}, tmp_path)
    assert changes == {} and "rmw_cyclonedds_cpp" in line


def test_apply_sets_only_what_choose_says(tmp_path):
    env = {"PATH": "/bin"}
    dds_profile.apply(env, tmp_path)
    assert env == {"PATH": "/bin", "FASTDDS_DEFAULT_PROFILES_FILE": str(dds_profile.PROFILE)}
    mine = {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/robot/dds.xml"}
    dds_profile.apply(mine, tmp_path)
    assert mine == {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/robot/dds.xml"}


def test_the_profile_holds_raw_camera_frames():
    """A segment of several 480×640 colour + depth pairs (0.9 + 0.6 MB) and 480×640 clouds
    (7.4 MB), UDPv4 kept for discovery and other machines, the builtin transports replaced (or
    Fast DDS keeps its 512 KB segment), and no QoS of its own (ROS's stay)."""
    root = ET.parse(dds_profile.PROFILE).getroot()
    shm = [t for t in root.iterfind(".//d:transport_descriptor", NS) if t.findtext("d:type", namespaces=NS) == "SHM"]
    assert len(shm) == 1 and int(shm[0].findtext("d:segment_size", namespaces=NS)) >= 10 * (480 * 640 * 5)
    types = {t.findtext("d:type", namespaces=NS) for t in root.iterfind(".//d:transport_descriptor", NS)}
    assert types == {"SHM", "UDPv4"}
    participant = root.find(".//d:participant", NS)
    assert participant.get("is_default_profile") == "true"
    assert participant.findtext("d:rtps/d:useBuiltinTransports", namespaces=NS) == "false"
    used = [t.text for t in participant.iterfind("d:rtps/d:userTransports/d:transport_id", NS)]
    assert sorted(used) == sorted(t.findtext("d:transport_id", namespaces=NS)
                                  for t in root.iterfind(".//d:transport_descriptor", NS))
    assert root.find(".//d:data_writer", NS) is None and root.find(".//d:data_reader", NS) is None


def test_the_node_prints_its_profile_for_the_camera(capsys):
    assert node.main(["node", "--fastdds-profile"]) == 0
    assert capsys.readouterr().out.strip() == str(dds_profile.PROFILE)
