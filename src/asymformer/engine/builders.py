"""Building the pieces of a run from a TrainConfig: datasets, loaders, model, optimiser.

Kept apart from the loop so evaluation, the benchmark and tests build things the same way.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from asymformer.devices import bf16_native

from .distributed import ShardedSampler

SYNTHETIC_PREFIX = "synthetic:"
MAX_SYNTHETIC = 1_000_000  # rooms per split: samplers hold a permutation of them


def open_split(data: str, split: str, layout: str = "auto", seed: int = 0, size=(480, 640), options=None):
    """A dataset without transform. `synthetic:N_TRAIN:N_TEST` generates rooms in memory at `size`.

    options: open_dataset keywords (classes, sensors, depth_unit, depth_encoding).
    """
    from asymformer import data as D

    if data.startswith(SYNTHETIC_PREFIX):
        if options:
            raise ValueError(f"{', '.join(sorted(options))}: these dataset options apply to dataset folders, "
                             f"not to {data}")
        if split not in ("train", "val", "test"):  # never silently the test frames under another name
            raise ValueError(f"split {split!r}: {data} has the splits train and test (val = test)")
        if layout not in ("auto", None):
            raise ValueError(f"layout {layout!r}: {data} is generated in memory and has no layout; drop --layout")
        parts = data[len(SYNTHETIC_PREFIX):].split(":")
        try:
            n_train, n_test = (int(p) for p in parts)
        except ValueError:
            raise ValueError(f"--data {data!r}: expected synthetic:N_TRAIN:N_TEST, e.g. synthetic:64:16") from None
        if not (0 <= n_train <= MAX_SYNTHETIC and 0 <= n_test <= MAX_SYNTHETIC):  # a typo must not fill memory
            raise ValueError(f"--data {data!r}: room counts go from 0 to {MAX_SYNTHETIC:,}, e.g. synthetic:64:16")
        num, offset = (n_train, 0) if split == "train" else (n_test, n_train)  # disjoint frames
        return D.SyntheticRooms(num, height=size[0], width=size[1], seed=seed, offset=offset, cache=True)
    return D.open_dataset(data, split, layout=layout, seed=seed, **dict(options or {}))


def build_datasets(config):
    """(train, val) datasets with the recipe's transforms; val is None when validation is off."""
    from asymformer import data as D

    options = getattr(config, "data_options", None)
    train = open_split(config.data, config.train_split, config.layout, config.seed, config.base_size, options)
    norm = config.normalization or train.normalization
    train.transform = D.TrainTransform(crop_size=tuple(config.crop_size), base_size=tuple(config.base_size),
                                       scale_range=tuple(config.scale_range), hsv=config.hsv,
                                       flip=config.flip, normalization=norm)
    val = None
    if config.val_every > 0:
        val = open_split(config.data, config.val_split, config.layout, config.seed, config.base_size, options)
        val.transform = D.EvalTransform(size=tuple(config.eval_size), normalization=norm)
        if val.num_classes != train.num_classes:
            raise ValueError(f"{config.data}: the {config.val_split} split has {val.num_classes} classes but "
                             f"{config.train_split} has {train.num_classes}")
    return train, val, norm


def make_loader(dataset, batch_size: int, sampler, workers: int, device, drop_last: bool) -> DataLoader:
    """A DataLoader whose worker seeding never draws from the global torch RNG (exact resume).

    Augmentation randomness comes from the dataset's (seed, epoch, index) generators, so the
    worker count changes nothing but speed.
    """
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      drop_last=drop_last, pin_memory=device.type == "cuda",
                      generator=torch.Generator().manual_seed(0), persistent_workers=False)


def eval_loader(dataset, batch_size: int, workers: int, device, rank: int = 0, world: int = 1):
    sampler = ShardedSampler(len(dataset), rank, world, shuffle=False, pad=False)
    return make_loader(dataset, batch_size, sampler, workers, device, drop_last=False)


def build_model(config, num_classes: int):
    import asymformer

    model = asymformer.create_model(config.model, num_classes=num_classes, **dict(config.model_kwargs))
    if config.pretrained_rgb or config.pretrained_depth:
        from asymformer.models import load_backbone_weights

        load_backbone_weights(model, rgb=config.pretrained_rgb, depth=config.pretrained_depth)
    return model


def build_optimizer(model, config) -> torch.optim.Optimizer:
    """AdamW with weight decay on every parameter, as the paper's recipe does."""
    return torch.optim.AdamW(model.parameters(), lr=config.lr, betas=tuple(config.betas),
                             weight_decay=config.weight_decay)


def amp_dtype(amp: str, device) -> torch.dtype | None:
    """fp16 needs CUDA (with a GradScaler); bf16 runs on CUDA, and on CPU via CPU autocast."""
    if amp == "none":
        return None
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("--amp fp16 needs a CUDA device; use --amp bf16 or --amp none on CPU")
    if amp == "bf16" and device.type == "cuda" and not bf16_native(device):
        raise ValueError("--amp bf16: this GPU has no native bfloat16 (pre-Ampere emulates it slowly); use --amp fp16")
    return torch.float16 if amp == "fp16" else torch.bfloat16
