"""What a resumed run may change, and the checks that keep a resume exact or refuse it clearly.

A run directory holds the whole plan (config.json) and the position in it (state.pt). Resuming
continues that plan; a few settings may change on the way (`RESUME_OVERRIDABLE`: where it runs,
the lr, the clip, the length), each with a notice in the log; anything else is refused with the
reason (`RESUME_REFUSED_BECAUSE`). Per-invocation limits (`--stop-after`, `--time-limit`) are
never inherited, so the printed `asymformer train --resume RUN` really finishes the run.

Extending (`--epochs N` larger than planned) re-plans the schedule for the new total: warm-up is
unchanged, the poly decay is recomputed as if N epochs had been planned from the start, so the
lr at the resume point moves up to the new curve and decays to zero at the new end.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from asymformer.files import DirLock, LockHeld
from asymformer.models.finetune import CLASSIFIER_PREFIX

from .config import PER_INVOCATION, RESUME_OVERRIDABLE, RESUME_REFUSED_BECAUSE, TrainConfig, load_run_config


def resume_config(resume, overrides: dict | None) -> tuple[TrainConfig, list[str]]:
    """The saved config with the allowed overrides applied, and one notice per changed setting."""
    saved = load_run_config(resume)
    for key in PER_INVOCATION:  # older config.json files may still hold them
        setattr(saved, key, None)
    out = (overrides or {}).get("out")
    if out is not None and Path(out).resolve() != Path(resume).resolve():
        raise ValueError(f"--out {out} with --resume {resume}: a resumed run writes into its own directory; drop "
                         "--out (to branch off into a new directory, use --init-from "
                         f"{resume}/checkpoints/last.safetensors)")
    given = {k: v for k, v in (overrides or {}).items() if v is not None and k != "out"}
    refused = [k for k, v in given.items() if k not in RESUME_OVERRIDABLE and _differs(getattr(saved, k), v)]
    if refused:
        reasons = "; ".join(f"--{k.replace('_', '-')}: {RESUME_REFUSED_BECAUSE.get(k, 'fixed for the run')}"
                            for k in sorted(refused))
        raise ValueError(f"--resume {resume}: cannot change {reasons}. Settings that may change on resume: "
                         f"{', '.join(sorted(RESUME_OVERRIDABLE))}; otherwise start a new run with "
                         f"--init-from {resume}/checkpoints/last.safetensors")
    notices = []
    for key, value in given.items():
        if key in RESUME_OVERRIDABLE and key not in PER_INVOCATION and _differs(getattr(saved, key), value):
            notices.append(f"{key} changed on resume: {getattr(saved, key)!r} -> {value!r}")
        if key in RESUME_OVERRIDABLE:
            setattr(saved, key, value)
    saved.out = str(resume)
    return saved.validate(), notices


def _differs(old, new) -> bool:
    if isinstance(old, tuple) or isinstance(new, tuple):
        return tuple(old or ()) != tuple(new or ())
    return old != new


def check_state_fits(state: dict, model, data: str, run: str) -> None:
    """Refuse a resume whose dataset has another class count before anything is written."""
    own = model.state_dict()
    key = CLASSIFIER_PREFIX + "weight"
    saved = state["model"].get(key)
    if saved is not None and key in own and saved.shape[0] != own[key].shape[0]:
        raise ValueError(f"--data {data} has {own[key].shape[0]} classes but the run {run} was trained with "
                         f"{saved.shape[0]}; resume it on its own dataset, or start a new run with "
                         f"--init-from {run}/checkpoints/last.safetensors to adapt it to this one")
    bad = [k for k, v in state["model"].items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state["model"]]
    if bad or missing:
        raise ValueError(f"{run}/checkpoints/state.pt does not fit the model of config.json "
                         f"({len(bad)} mis-shaped, {len(missing)} missing tensors, e.g. {(bad + missing)[0]}); "
                         "the run directory was changed by hand: start a new run")


def saved_iterations_per_epoch(state: dict, saved_epochs: int) -> int | None:
    if "iterations_per_epoch" in state:
        return int(state["iterations_per_epoch"])
    total = int(state["scheduler"]["total_iters"])
    return total // saved_epochs if saved_epochs and total % saved_epochs == 0 else None


def check_position(state: dict, *, ipe: int, saved_epochs: int, epochs: int, run: str, data: str,
                   n_train: int, batch: int) -> list[str]:
    """The saved position must mean the same here: same iterations per epoch, not past the new end."""
    saved_ipe = saved_iterations_per_epoch(state, saved_epochs)
    if saved_ipe is not None and saved_ipe != ipe:
        raise ValueError(f"--data {data}: {n_train} training samples give {ipe} iterations per epoch at batch "
                         f"{batch}, but the run {run} has {saved_ipe}; an exact resume needs the same training "
                         f"set. To train on other data start a new run with --init-from "
                         f"{run}/checkpoints/last.safetensors")
    done = int(state["iteration"])
    if epochs * ipe < done:
        raise ValueError(f"--epochs {epochs}: the run {run} has already trained {done} iterations "
                         f"({done / ipe:g} epochs); give at least {-(-done // ipe)}")
    if epochs != saved_epochs:
        verb = "extended" if epochs > saved_epochs else "shortened"
        return [f"schedule {verb} from {saved_epochs} to {epochs} epochs ({saved_epochs * ipe} -> {epochs * ipe} "
                "iterations): warm-up unchanged, the poly decay is re-planned to reach zero at the new end"]
    return []


def resume_command(run_dir, world: int = 1) -> str:
    """The command that continues `run_dir` to the end of its plan (printed when a run stops)."""
    head = f"torchrun --nproc_per_node {world} -m asymformer" if world > 1 else "asymformer"
    return f"{head} train --resume {shlex.quote(str(run_dir))}"


def divergence_message(exc: Exception, run, where: str, command: str) -> str:
    """Name the iteration, the likely causes and the way out (resume with a lower --lr)."""
    lr = run.config.lr
    return (f"iteration {run.iteration + 1} (epoch {run.iteration // run.ipe + 1}): {exc}. The run diverged; likely "
            f"causes: a learning rate too high for this data and batch (--lr {lr:g}), fp16 overflow (use --amp "
            "bf16), no gradient clipping (try --grad-clip 1.0), or NaN/inf values in the inputs. "
            f"{where[0].upper() + where[1:]}; continue with a lower lr: {command} --lr {lr / 10:g}")


def lock_run_dir(out):
    """Refuse a second concurrent `train` into the same --out (both would overwrite each other)."""
    try:
        return DirLock(out).acquire()
    except LockHeld as held:
        raise FileExistsError(f"--out {out} is in use by another `asymformer train` (pid {held}); wait for it "
                              "to finish or choose another --out") from None
