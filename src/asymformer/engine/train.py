"""The training loop: paper recipe, AMP, torchrun/DDP, exact resume, validation and checkpoints.

Exactness rests on three things: the data order is a pure function of (seed, epoch) and the
resume skips the batches already consumed; augmentation comes from per-sample generators; every
RNG state is saved at a step boundary (at epoch ends, on SIGINT/SIGTERM, on `stop_after`, and
when a step fails, e.g. on a corrupt file), so a resumed run replays the remaining steps.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from asymformer.files import make_folder
from asymformer.models.finetune import checkpoint_normalization, load_matching_weights
from asymformer.progress import progress_bar

from . import checkpoint as ckpt
from . import distributed as dist_utils
from . import summary
from .builders import amp_dtype, build_datasets, build_model, build_optimizer, eval_loader, make_loader
from .config import TrainConfig, load_run_config, save_config
from .distributed import ShardedSampler
from .evaluate import evaluate_model
from .logging import RunLogger, plot_curves, prediction_panels
from .resume import check_position, check_state_fits, divergence_message, lock_run_dir, resume_command, resume_config
from .schedule import WarmupPoly

CURVES_EVERY_S = 30.0  # a matplotlib figure costs about a second; short epochs would spend their time drawing


def train_step(model, batch, optimizer, device, *, dtype=None, scaler=None, grad_clip=0.0,
               zero_depth=False, channels_last=False, ignore_index=255) -> float | None:
    """One optimisation step on a batch dict; returns the loss, or None for a batch without labels.

    A batch whose pixels are all void carries nothing to learn: with one process it is skipped
    (no forward, no update); under DDP every rank must still join the gradient all-reduce, so it
    contributes a zero gradient. A non-finite loss or gradient raises FloatingPointError before
    the optimiser touches the weights, so the state at the last step stays resumable.
    """
    rgb = batch["rgb"].to(device, non_blocking=True)
    depth = batch["depth"].to(device, non_blocking=True)
    label = batch["label"].to(device, non_blocking=True)
    void = not bool((label != ignore_index).any())
    if void and dist_utils.world_size() == 1:
        return None
    if zero_depth:
        depth = torch.zeros_like(depth)
    if channels_last:
        rgb, depth = rgb.contiguous(memory_format=torch.channels_last), depth.contiguous(
            memory_format=torch.channels_last)
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        logits = model(rgb, depth)
    if void:
        loss = logits.float().sum() * 0.0
    else:
        loss = F.cross_entropy(logits.float(), label, ignore_index=ignore_index)
    if not _finite_on_every_rank(loss, model, device):
        raise FloatingPointError(f"the training loss became {loss.item()}")
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        if grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else math.inf)
        if not torch.isfinite(norm):
            raise FloatingPointError(f"the gradient norm became {norm.item()} (loss {loss.item():.4g})")
        optimizer.step()
    return None if void else float(loss.detach())


def prepare_model(model, config, device, world: int):
    """Move, convert (channels-last, SyncBN on CUDA) and wrap (DDP, compile); returns (raw, wrapped)."""
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if world > 1 and config.sync_bn and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    wrapped = model
    if world > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        wrapped = torch.compile(wrapped)
    return model, wrapped


class _StopFlag:
    """SIGINT/SIGTERM request a clean stop at the next step boundary instead of killing the run."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def install(self):
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: signals stay with the caller
            self._old = {}
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second signal: stop right now
            raise KeyboardInterrupt
        self.requested = True

    def restore(self):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _agree(flag: bool, device) -> bool:
    """Every rank stops together if any one was asked to (torchrun may signal only some)."""
    if dist_utils.world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    torch.distributed.all_reduce(t)
    return bool(t.item() > 0)


def _finite_on_every_rank(loss: torch.Tensor, model, device) -> bool:
    """True when the loss is finite on every rank of a DDP model: ranks must agree to stop, or
    the ones whose loss was finite would wait forever in the gradient all-reduce."""
    bad = (~torch.isfinite(loss.detach())).float().reshape(1).to(device)
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        torch.distributed.all_reduce(bad)
    return not bool(bad.item() > 0)


def _gather_rng() -> list:
    state = ckpt.rng_state()
    if dist_utils.world_size() == 1:
        return [state]
    out = [None] * dist_utils.world_size()
    torch.distributed.all_gather_object(out, state)
    return out


def _mean_loss(loss: float | None, device) -> float | None:
    """Mean training loss over the processes whose batch had labels (None if none had)."""
    if dist_utils.world_size() == 1:
        return loss
    t = torch.tensor([loss or 0.0, 0.0 if loss is None else 1.0], device=device, dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return float(t[0] / t[1]) if t[1] > 0 else None


def _clean_error(exc: Exception) -> str:
    """DataLoader workers wrap errors in a multi-line traceback: keep the original message."""
    msg = str(exc)
    if "Original Traceback" in msg:
        last = [ln for ln in msg.splitlines() if ln.strip()][-1]
        msg = last.split(": ", 1)[1] if ": " in last else last
    return msg


def _prepare_config(config: TrainConfig | None, resume: str | None, overrides: dict | None):
    """(config, notices): a resumed run's saved config with the allowed changes, or the given one."""
    if resume:
        return resume_config(resume, overrides)
    if config is None:
        raise ValueError("train() needs a config (or resume=RUN_DIR)")
    return config.validate(), []


def train(config: TrainConfig | None = None, *, resume: str | None = None, overrides: dict | None = None,
          model=None, on_step=None) -> dict:
    """Train per `config` (or continue the run directory `resume`); returns a summary dict.

    `model` replaces the one the config names (a custom network); `on_step(iteration, loss)` is
    called after every step (tests use it to interrupt a run). The summary's `resume_command`
    finishes a stopped run; only one process at a time may train into one run directory.
    """
    config, notices = _prepare_config(config, resume, overrides)
    device = dist_utils.bind_device(config.device)
    created = dist_utils.init_distributed(device)
    lock = lock_run_dir(config.out) if dist_utils.is_main() else None
    stop = _StopFlag().install()
    try:
        return _Run(config, device, model, on_step, stop, bool(resume), notices).run()
    finally:
        stop.restore()
        if lock is not None:
            lock.release()
        dist_utils.cleanup(created)


class _Run:
    def __init__(self, config, device, model, on_step, stop, resume, notices=()):
        self.config, self.device, self.on_step, self.stop = config, device, on_step, stop
        self.notices, self.void_batches = list(notices), 0
        self.started = time.monotonic()  # --time-limit counts from here (this invocation, not the run)
        self.rank, self.world = dist_utils.rank(), dist_utils.world_size()
        self.main = self.rank == 0
        self.out = Path(config.out)
        self.ckpt_dir = self.out / "checkpoints"
        if config.batch_size % self.world:
            raise ValueError(f"--batch-size {config.batch_size} is the global batch: it must divide by the "
                             f"{self.world} processes")
        self.batch = config.batch_size // self.world
        h, w = config.crop_size
        if self.batch * math.ceil(h / 32) * math.ceil(w / 32) < 2:  # the 1/32 stage's BatchNorm needs 2 values
            raise ValueError(f"--crop-size {h}x{w} with {self.batch} sample(s) per process leaves one value per "
                             "channel at the 1/32-resolution stage, which BatchNorm cannot train on; use a crop of "
                             "at least 64x32 or a larger --batch-size")
        if not resume and (self.ckpt_dir / ckpt.STATE_NAME).exists():
            raise FileExistsError(f"{self.out} already holds a run: continue it with --resume {self.out} or "
                                  "choose another --out")
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(config.seed)  # identical initialisation on every rank
        if config.init_from and not resume and config.normalization is None:
            config.normalization = checkpoint_normalization(config.init_from)  # keep the source's input statistics
        self.train_ds, self.val_ds, self.norm = build_datasets(config)
        self.num_classes = config.num_classes or self.train_ds.num_classes
        model = model if model is not None else build_model(config, self.num_classes)
        self.init_report = None
        if config.init_from and not resume:
            self.init_report = summary.describe_init(config.init_from, load_matching_weights(model, config.init_from))
        model.info = model.info.replace(class_names=self.train_ds.class_names, colors=self.train_ds.colors.tolist(),
                                        normalization=self.norm, train_size=config.crop_size,
                                        eval_size=config.eval_size)
        self.model, self.wrapped = prepare_model(model, config, device, self.world)
        self.optimizer = build_optimizer(self.model, config)
        n_rank = len(ShardedSampler(len(self.train_ds), self.rank, self.world))
        self.ipe = n_rank // self.batch
        if self.ipe == 0:
            raise ValueError(f"{config.data}: {len(self.train_ds)} training samples cannot fill one batch of "
                             f"{config.batch_size}; lower --batch-size")
        self.total = config.epochs * self.ipe
        self.scheduler = WarmupPoly(self.optimizer, self.total, round(config.warmup_epochs * self.ipe),
                                    config.warmup_start_factor, config.poly_power)
        self.dtype = amp_dtype(config.amp, device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=config.amp == "fp16")
        self.iteration, self.best = 0, -1.0
        self._plotted, self._plotted_iteration = -math.inf, None  # curves drawn at most every CURVES_EVERY_S
        torch.manual_seed(config.seed + self.rank)  # per-rank dropout / drop-path streams
        if resume:
            self._restore()
        self.saved_at = self.iteration if resume else None
        if self.main:
            summary.announce(self)
            make_folder(self.ckpt_dir)
            save_config(config, self.out / "config.json")
            self.logger = RunLogger(self.out, config.tensorboard, self.iteration if resume else None,
                                    class_names=self.val_ds.class_names if self.val_ds is not None else None)
            for note in self.notices:
                self.logger.log({"kind": "notice", "iteration": self.iteration, "message": note, "time": time.time()})
        dist_utils.barrier()

    def _restore(self):
        state = ckpt.load_state(self.ckpt_dir / ckpt.STATE_NAME)
        saved = load_run_config(self.out)  # the plan before this invocation's changes
        check_state_fits(state, self.model, self.config.data, str(self.out))
        self.notices += check_position(state, ipe=self.ipe, saved_epochs=saved.epochs, epochs=self.config.epochs,
                                       run=str(self.out), data=self.config.data, n_train=len(self.train_ds),
                                       batch=self.config.batch_size)
        state["scheduler"]["total_iters"] = self.total  # same unless --epochs changed (re-planned above)
        rngs = state["rng"]
        state["rng"] = rngs[self.rank] if len(rngs) == self.world else rngs[0]
        ckpt.restore(state, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                     scaler=self.scaler)
        if self.config.lr != saved.lr:  # a lower --lr after a divergence: same curve, new base
            self.scheduler.rescale(self.config.lr / saved.lr)
        self.iteration, self.best = int(state["iteration"]), float(state["best_miou"])
        self.void_batches = int(state.get("void_batches", 0))

    def save_state(self, rng=None):
        rng = rng if rng is not None else _gather_rng()
        if self.main:
            ckpt.save_state(self.ckpt_dir / ckpt.STATE_NAME, model=self.model, optimizer=self.optimizer,
                            scheduler=self.scheduler, scaler=self.scaler, iteration=self.iteration,
                            best_miou=self.best, iterations_per_epoch=self.ipe, void_batches=self.void_batches,
                            rng=rng)
        self.saved_at = self.iteration

    def save_model(self, name: str, metrics: dict | None = None):
        if not self.main:
            return
        c = self.config
        facts = {"epoch": self.iteration // self.ipe, "iteration": self.iteration, "zero_depth": c.zero_depth}
        if metrics and math.isfinite(metrics["miou"]):
            facts["miou"] = metrics["miou"]
        info = self.model.info.replace(training=facts, selected_on_split=c.val_split if name == "best" else None)
        ckpt.save_model_checkpoint(self.model, self.ckpt_dir / f"{name}.safetensors", info)

    def _stop_wanted(self) -> bool:
        c = self.config
        out_of_time = c.time_limit is not None and time.monotonic() - self.started >= 60.0 * c.time_limit
        want = self.stop.requested or out_of_time or (c.stop_after is not None and self.iteration >= c.stop_after)
        return _agree(want, self.device)

    def run(self) -> dict:
        status, last_metrics = "finished", None
        self.boundary_rng = ckpt.rng_state()
        try:
            while self.iteration < self.total:
                if self.config.stop_after is not None and self.iteration >= self.config.stop_after:
                    self.save_state()  # --stop-after at or before the start: save the position and stop
                    status = "stopped"
                    break
                epoch, skip = divmod(self.iteration, self.ipe)
                if self._epoch(epoch, skip) == "stopped":
                    self.save_state()
                    status = "stopped"
                    break
                last_metrics = self._end_epoch(epoch) or last_metrics
                if self.iteration < self.total and self._stop_wanted():
                    status = "stopped"
                    break
        except Exception as exc:
            self._save_after_failure()
            command = resume_command(self.out, self.world)
            where = (f"state saved at iteration {self.saved_at} in {self.ckpt_dir / ckpt.STATE_NAME}"
                     if self.saved_at is not None else "no resume state was saved")
            if isinstance(exc, FloatingPointError):
                raise FloatingPointError(divergence_message(exc, self, where, command)) from exc
            note = f" ({where}; fix the cause and run `{command}`)"
            if isinstance(exc, (ValueError, FileNotFoundError)):
                raise type(exc)(_clean_error(exc) + note) from exc
            exc.add_note(note)
            raise
        if self.main:
            self._finish()
        return {"status": status, "iteration": self.iteration, "total_iterations": self.total,
                "best_miou": self.best if self.best >= 0 else None, "last_metrics": last_metrics,
                "best_selected_on": self.config.val_split if self.val_ds is not None else None,
                "run_dir": str(self.out), "model": self.model, "void_batches": self.void_batches,
                "resume_command": resume_command(self.out, self.world) if status == "stopped" else None}

    def _save_after_failure(self):
        """Keep the progress of a run that failed between steps (a corrupt file, a lost disk).

        Weights that are no longer finite are not saved: the previous state.pt (the last good
        position) stays, so the run can be resumed with a lower --lr.
        """
        if not self.main:
            return
        try:
            if all(bool(torch.isfinite(t).all()) for t in self.model.state_dict().values() if t.is_floating_point()):
                self.save_state([self.boundary_rng])
            self._finish()
        except Exception as exc:  # never hide the original error behind a second one
            tqdm.write(f"could not save the resume state: {exc}")

    def _epoch(self, epoch: int, skip: int) -> str:
        c = self.config
        self.train_ds.set_epoch(epoch)
        sampler = ShardedSampler(len(self.train_ds), self.rank, self.world, c.seed, epoch, start=skip * self.batch)
        loader = make_loader(self.train_ds, self.batch, sampler, c.workers, self.device, drop_last=True)
        self.wrapped.train()
        bar = progress_bar(loader, total=self.ipe - skip, desc=f"epoch {epoch + 1}/{c.epochs}", unit="it",
                           enabled=bool(self.main and c.progress))
        t0, n = time.perf_counter(), 0
        for batch in bar:
            lr = self.scheduler.get_last_lr()[0]  # the lr this step uses
            loss = train_step(self.wrapped, batch, self.optimizer, self.device, dtype=self.dtype,
                              scaler=self.scaler, grad_clip=c.grad_clip, zero_depth=c.zero_depth,
                              channels_last=c.channels_last)
            self.scheduler.step()
            self.iteration += 1
            n += 1
            self.boundary_rng = ckpt.rng_state()
            its = n / (time.perf_counter() - t0)
            if loss is None:
                self._void(batch)
            else:
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
            if self.iteration % c.log_every == 0 or self.iteration == self.total:
                loss_all = _mean_loss(loss, self.device)
                if self.main:
                    self.logger.log({"kind": "train", "epoch": epoch + 1, "iteration": self.iteration,
                                     "loss": loss_all, "lr": lr, "it_s": its, "void_batches": self.void_batches,
                                     "time": time.time()})
            if self.on_step is not None:
                self.on_step(self.iteration, loss)
            if self.iteration % self.ipe != 0 and self._stop_wanted():
                bar.close()
                return "stopped"
        bar.close()
        return "epoch_done"

    def _void(self, batch):
        """Count (and name, the first few times) batches without a single labelled pixel."""
        self.void_batches += 1
        if self.main and self.void_batches <= 3:
            names = ", ".join(str(n) for n in batch.get("name", []))
            tqdm.write(f"iteration {self.iteration}: batch without labelled pixels ({names or 'unnamed'}) skipped"
                       f"{'' if self.void_batches < 3 else ' (further ones are only counted in the log)'}")

    def _end_epoch(self, epoch: int):
        c, done = self.config, epoch + 1
        metrics = None
        if self.val_ds is not None and (done % c.val_every == 0 or self.iteration >= self.total):
            metrics = self.validate()
            if self.main and metrics["pixels"] == 0:
                tqdm.write(f"warning: the {c.val_split} split of {c.data} has no labelled pixels: validation "
                           "measures nothing and best.safetensors is not updated")
            if self.main:
                self.logger.log({"kind": "val", "epoch": done, "iteration": self.iteration,
                                 **{k: metrics[k] for k in ("miou", "pixel_acc", "mean_acc")},
                                 "per_class_iou": metrics["per_class_iou"], "time": time.time()})
                tqdm.write(f"epoch {done}: mIoU {metrics['miou']:.4f}  pixel acc {metrics['pixel_acc']:.4f}")
                if self.logger.tb is not None:
                    self.logger.log_images(self.iteration, prediction_panels(self.model, self.val_ds, self.device,
                                                                             zero_depth=c.zero_depth))
            if math.isfinite(metrics["miou"]) and metrics["miou"] > self.best:
                self.best = metrics["miou"]
                self.save_model("best", metrics)
        self.save_model("last", metrics)
        if c.save_every and done % c.save_every == 0:
            self.save_model(f"epoch_{done:03d}", metrics)
        self.save_state()
        if self.main and time.monotonic() - self._plotted >= CURVES_EVERY_S:
            self._plot()
        return metrics

    def _plot(self):
        plot_curves(self.out, self.config.figure_format)
        self._plotted, self._plotted_iteration = time.monotonic(), self.iteration

    def validate(self) -> dict:
        dist_utils.broadcast_buffers(self.model)  # score with the statistics rank 0 saves
        loader = eval_loader(self.val_ds, self.config.val_batch_size, self.config.workers, self.device,
                             self.rank, self.world)
        cm = evaluate_model(self.model, loader, self.num_classes, self.device, dtype=self.dtype,
                            zero_depth=self.config.zero_depth, progress=False)
        cm.all_reduce()
        return cm.compute()

    def _finish(self):
        if self._plotted_iteration != self.iteration:
            self._plot()
        self.logger.close()
