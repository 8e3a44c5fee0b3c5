import json
import os
import shutil
import signal

import pytest
import torch

import asymformer
from asymformer.engine import train
from asymformer.engine.distributed import ShardedSampler

from .conftest import small_config


def _max_diff(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa)


def test_exact_resume_after_sigterm_mid_epoch(tiny_data, tmp_path):
    full = train(small_config(tiny_data, tmp_path / "full"))
    assert full["status"] == "finished" and full["iteration"] == 4

    def interrupt(iteration, loss):
        if iteration == 3:  # mid-epoch 2: SIGTERM as a cluster scheduler would send it
            os.kill(os.getpid(), signal.SIGTERM)

    run = tmp_path / "cut"
    part = train(small_config(tiny_data, run), on_step=interrupt)
    assert part["status"] == "stopped" and part["iteration"] == 3
    # Resume with a different worker count: data order and augmentation must not depend on it.
    rest = train(resume=str(run), overrides={"workers": 1})
    assert rest["status"] == "finished" and rest["iteration"] == 4
    assert _max_diff(full["model"], rest["model"]) == 0.0

    state = torch.load(run / "checkpoints" / "state.pt", weights_only=True)
    assert state["iteration"] == 4 and state["scheduler"]["iteration"] == 4
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log if r["kind"] == "train"] == [1, 2, 3, 4]
    ref = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in log if r["kind"] == "train"] == [r["loss"] for r in ref if r["kind"] == "train"]
    for name in ("last", "best"):
        m = asymformer.load_model(run / "checkpoints" / f"{name}.safetensors")
        assert m.info.class_names == ("a", "b", "c", "d") and m.info.normalization["name"] == "imagenet"
    assert _max_diff(asymformer.load_model(run / "checkpoints" / "last.safetensors"), rest["model"]) == 0.0
    assert (run / "curves.png").stat().st_size > 1000 and (run / "log.csv").is_file()
    assert json.loads((run / "config.json").read_text())["lr"] == 1e-3


def test_corrupt_file_mid_training_names_it_and_resumes(tiny_data, tmp_path):
    cfg = small_config(tiny_data, tmp_path / "run", epochs=1, val_every=0)
    names = (tiny_data / "train.txt").read_text().split()
    victim = tiny_data / "rgb" / f"{names[ShardedSampler(8, seed=0, epoch=0).indices[5]]}.png"
    good = victim.read_bytes()

    def corrupt(iteration, loss):
        if iteration == 1:  # after the first batch: the file is read by the second one
            victim.write_bytes(good[:40])

    with pytest.raises(ValueError, match=str(victim.name)) as info:
        train(cfg, on_step=corrupt)
    assert "--resume" in str(info.value)
    assert torch.load(tmp_path / "run" / "checkpoints" / "state.pt", weights_only=True)["iteration"] == 1
    victim.write_bytes(good)
    done = train(resume=str(tmp_path / "run"))
    assert done["status"] == "finished" and done["iteration"] == 2


def test_resume_refuses_recipe_changes_and_missing_state(tiny_data, tmp_path):
    cfg = small_config(tiny_data, tmp_path / "run", epochs=1, val_every=0, stop_after=0)
    assert train(cfg)["status"] == "stopped"
    with pytest.raises(ValueError, match="weight-decay: the optimiser and schedule state"):
        train(resume=str(tmp_path / "run"), overrides={"weight_decay": 0.5})
    shutil.rmtree(tmp_path / "run" / "checkpoints")
    with pytest.raises(FileNotFoundError, match="state.pt"):
        train(resume=str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        train(resume=str(tmp_path / "nothing"))


def test_time_limit_stops_resumably_then_resume_finishes(tiny_data, tmp_path):
    cfg = small_config(tiny_data, tmp_path / "run", epochs=2, val_every=0, time_limit=1e-6, crop_size=(32, 32),
                       base_size=(32, 32))
    first = train(cfg)
    assert first["status"] == "stopped" and first["iteration"] == 1  # the limit is checked after each step
    state = torch.load(tmp_path / "run" / "checkpoints" / "state.pt", weights_only=True)
    assert state["iteration"] == 1
    done = train(resume=str(tmp_path / "run"))  # the limit was for the first invocation only
    assert done["status"] == "finished" and done["iteration"] == first["total_iterations"]
