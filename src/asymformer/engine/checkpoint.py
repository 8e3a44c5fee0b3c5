"""Resume state and model checkpoints, written atomically.

The resume state (`checkpoints/state.pt`) holds everything that makes a continued run identical
to an uninterrupted one: weights, optimiser, scheduler, AMP scaler, every RNG state and the
global iteration (epoch and in-epoch position follow from it). Only tensors, numbers, strings,
lists and dicts go in, so `torch.load(weights_only=True)` reads it back.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from asymformer.files import torch_save

STATE_NAME = "state.pt"


def rng_state() -> dict:
    """Python, numpy, torch (and CUDA) generator states as weights_only-safe values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    py = random.getstate()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # This process's own GPU only (DDP ranks gather theirs): saving every visible GPU would
        # initialise them all and break a resume on a machine that shows fewer.
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["gauss"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if isinstance(cuda, (list, tuple)):  # files from 0.1 saved every visible GPU
            index = torch.cuda.current_device()
            cuda = cuda[index] if index < len(cuda) else None
        if cuda is not None:
            torch.cuda.set_rng_state(cuda)


def save_state(path, *, model, optimizer, scheduler, scaler, iteration: int, best_miou: float,
               iterations_per_epoch: int, void_batches: int = 0, rng: dict | None = None) -> None:
    """Write the resume state; `rng` lets the caller store states captured at a step boundary.

    iterations_per_epoch: a resume on another training set (another epoch length) is refused
    with it (resume.check_position). void_batches: batches skipped for having no labelled pixel,
    a count the training log carries on across resumes.
    """
    torch_save({
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else {},
        "rng": rng if rng is not None else rng_state(),
        "iteration": int(iteration),
        "best_miou": float(best_miou),
        "iterations_per_epoch": int(iterations_per_epoch),
        "void_batches": int(void_batches),
    }, path)


def load_state(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"resume state {path} not found: the run never finished an epoch or "
                                "was not stopped cleanly; start it again without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated / corrupt file: name it, say what to do
        raise ValueError(f"resume state {path} is unreadable ({type(exc).__name__}: {exc}); "
                         "delete it to restart the run from scratch") from None
    return {**(state.pop("extra", None) or {}), **state}  # files from 0.1 kept these two in an "extra" dict


def restore(state: dict, *, model, optimizer, scheduler, scaler) -> None:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and scaler.is_enabled() and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])


def save_model_checkpoint(model, path, info) -> None:
    """A `.safetensors` file `asymformer.load_model` reads, holding `info` (save_model writes atomically)."""
    import asymformer

    asymformer.save_model(model, str(path), info=info)
