"""The dataset base class every RGB-D dataset (real layouts and synthetic rooms) shares.

Augmentation randomness comes from `np.random.default_rng((seed, epoch, index))`, not from a
global or per-worker generator: the same sample gets the same augmentation whatever the number
of DataLoader workers, and an exact resume replays it.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from asymformer.viz import palette

IGNORE_INDEX = 255


class RGBDDataset(Dataset):
    """Samples are dicts: rgb uint8 H×W×3, depth float32 metres (0 invalid), label int64 (255 void), name."""

    ignore_index = IGNORE_INDEX

    def __init__(self, names, class_names, colors, transform=None, seed: int = 0,
                 normalization: str = "nyuv2_official"):
        self.names = list(names)
        self.class_names = list(class_names)
        self.colors = palette(len(self.class_names), colors)
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.normalization = normalization

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.names)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of an epoch (call before creating the epoch's iterator)."""
        self.epoch = int(epoch)

    def load_sample(self, index: int) -> dict:
        """Return the raw sample dict of `index` (subclasses implement this)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} samples")
        sample = self.load_sample(index)
        if self.transform is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            sample = self.transform(sample, rng)
        return sample
