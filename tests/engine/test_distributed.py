import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch.distributed as dist

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_matches_one_process(tmp_path):
    assert dist.is_gloo_available()
    out = tmp_path / "result.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parents[1] / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(HERE / "ddp_worker.py"), str(out), str(tmp_path / "run")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["world"] == 2 and r["steps"] == 4  # 8 images, global batch 4 split 2 + 2, 2 epochs
    assert r["rank_weight_diff"] == 0.0  # DDP keeps the replicas identical
    # Validation sharded over 2 ranks (3 images: 2 + 1, none duplicated or dropped) and summed
    # equals one process scoring every image of the same weights, to the last bit.
    alone = r["one_process_val"]
    assert alone.pop("images") == 3 and alone["pixels"] > 2 * 64 * 64
    assert r["rank_buffer_diff"] == 0.0, r["rank_buffer_diff"]
    assert r["ddp_val"] == alone
    # DDP's averaged gradient of 2 half batches == the gradient of the whole batch in one process.
    assert r["grad_max_abs_diff"] <= 1e-5 * r["grad_scale"] + 1e-8
    assert r["weights_after_step_diff"] < 1e-5
    assert r["nan_on_rank1_stopped_rank0"]  # a non-finite loss on one rank stops every rank
    # Only rank 0 wrote the run directory, and its logs are complete.
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in log if x["kind"] == "train"] == [1, 2, 3, 4]
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").is_file()
