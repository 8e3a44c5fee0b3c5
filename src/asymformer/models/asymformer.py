"""AsymFormer: a ConvNeXt RGB branch, a MiT branch for depth then fused RGB-D features, LAFS+CMA
fusion at stages 2-4 and SegFormer's MLP decoder. Parameter names match the released checkpoint.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .convnext import convnext_blocks, convnext_downsample, convnext_stem
from .decoder import MLPDecoder
from .fusion import Fusion
from .info import ModelInfo
from .layers import linspace_rates
from .mit import MiTStage

# Each variant is plain keyword arguments of AsymFormer. "b0" = MiT-B0 depth branch; the suffix names
# the ConvNeXt size (t = Tiny, as released; n/p/a = nano/pico/atto for CPU training and demos).
MIT_B0 = dict(depth_dims=(32, 64, 160, 256), depth_heads=(1, 2, 5, 8), depth_depths=(2, 2, 2, 2),
              sr_ratios=(8, 4, 2, 1))
VARIANTS = {
    "asymformer_b0_t": dict(rgb_dims=(96, 192, 384, 768), rgb_depths=(3, 3, 9, 3), **MIT_B0),
    "asymformer_b0_n": dict(rgb_dims=(80, 160, 320, 640), rgb_depths=(2, 2, 8, 2), **MIT_B0),
    "asymformer_b0_p": dict(rgb_dims=(64, 128, 256, 512), rgb_depths=(2, 2, 6, 2), **MIT_B0),
    "asymformer_b0_a": dict(rgb_dims=(40, 80, 160, 320), rgb_depths=(2, 2, 6, 2), **MIT_B0),
}
PAD_MULTIPLE = 32
# Metadata attributes of 0.1, now fields of `model.info`: using one names the new place, instead of
# setting a plain attribute that nothing reads any more (a silently lost class list or normalisation).
_MOVED = {"model_name": "name", "model_kwargs": "kwargs", "class_names": "class_names",
          "normalization": "normalization", "fused": "fused",
          "metadata": "{eval_size, train_size, colors, selected_on_split, training}"}


class AsymStage(MiTStage):
    """One `down_sample_N` of the checkpoint: ConvNeXt stage, MiT stage and (stages 2-4) fusion."""

    def __init__(self, index: int, rgb_in: int, rgb_dim: int, rgb_dps, depth_in: int, depth_dim: int,
                 heads: int, depth: int, sr: int, depth_dps, fusion: str | None, attn_drop: float,
                 kv_downsample: int):
        kernel, stride = (7, 4) if index == 1 else (3, 2)
        super().__init__(depth_in, depth_dim, heads, depth, sr, kernel, stride, depth_dps)
        self.rgb_stem = convnext_stem(rgb_in, rgb_dim) if index == 1 else convnext_downsample(rgb_in, rgb_dim)
        self.rgb_layer = convnext_blocks(rgb_dim, rgb_dps)
        if fusion is not None:
            self.SCC = Fusion(depth_dim, rgb_dim, fusion, attn_drop, kv_downsample)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor, return_map: bool = False):
        rgb = self.rgb_layer(self.rgb_stem(rgb))
        depth = self.forward_depth(depth)
        if not hasattr(self, "SCC"):
            return rgb, depth, None
        if return_map:
            fused, m = self.SCC(depth, rgb, return_map=True)
            return rgb, fused, m
        return rgb, self.SCC(depth, rgb), None


class AsymFormer(nn.Module):
    """RGB-D semantic segmentation network. `forward(rgb, depth) -> logits` at the input size."""

    def __init__(self, num_classes: int = 40, rgb_dims=(96, 192, 384, 768), rgb_depths=(3, 3, 9, 3),
                 depth_dims=(32, 64, 160, 256), depth_heads=(1, 2, 5, 8), depth_depths=(2, 2, 2, 2),
                 sr_ratios=(8, 4, 2, 1), depth_in_chans: int = 1, fusion: str = "lafs_cma",
                 cma_kv_downsample=(1, 1, 1), rgb_drop_path: float = 0.3, depth_drop_path: float = 0.1,
                 attn_drop: float = 0.2, decoder_dim: int = 256, decoder_dropout: float = 0.1):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if len(tuple(cma_kv_downsample)) != 3 or any(int(f) < 1 for f in cma_kv_downsample):
            raise ValueError(f"cma_kv_downsample must be three integers >= 1 (stages 2-4), got {cma_kv_downsample}")
        self.num_classes = num_classes
        self.depth_in_chans = depth_in_chans
        rgb_dps = linspace_rates(rgb_drop_path, rgb_depths)
        depth_dps = linspace_rates(depth_drop_path, depth_depths)
        rgb_in, depth_in = 3, depth_in_chans
        for i in range(4):
            stage = AsymStage(i + 1, rgb_in, rgb_dims[i], rgb_dps[i], depth_in, depth_dims[i], depth_heads[i],
                              depth_depths[i], sr_ratios[i], depth_dps[i], None if i == 0 else fusion,
                              attn_drop, 1 if i == 0 else int(cma_kv_downsample[i - 1]))
            setattr(self, f"down_sample_{i + 1}", stage)
            rgb_in, depth_in = rgb_dims[i], depth_dims[i]
        self.Decoder = MLPDecoder(depth_dims, decoder_dim, num_classes, decoder_dropout)
        self.info = ModelInfo(num_classes=num_classes)  # create_model / loaders / fuse() replace it

    @property
    def info(self) -> ModelInfo:
        """Everything about the model besides its weights (models/info.py)."""
        return self._info

    @info.setter
    def info(self, value: ModelInfo) -> None:
        if not isinstance(value, ModelInfo):
            raise TypeError(f"model.info must be a ModelInfo, got {type(value).__name__}")
        if value.num_classes != self.num_classes:
            raise ValueError(f"model.info says {value.num_classes} classes but the model has {self.num_classes}")
        self._info = value

    def __getattr__(self, name: str):
        if name in _MOVED:
            raise AttributeError(f"model.{name} is now model.info.{_MOVED[name]}")
        return super().__getattr__(name)

    def __setattr__(self, name: str, value) -> None:
        if name in _MOVED:
            raise AttributeError(f"model.{name} is now model.info.{_MOVED[name]}: set it with "
                                 f"model.info = model.info.replace({_MOVED[name]}=...)")
        super().__setattr__(name, value)

    @property
    def stages(self) -> list[AsymStage]:
        return [self.down_sample_1, self.down_sample_2, self.down_sample_3, self.down_sample_4]

    def _check_inputs(self, rgb: torch.Tensor, depth: torch.Tensor) -> None:
        if not isinstance(rgb, torch.Tensor) or not isinstance(depth, torch.Tensor):
            raise ValueError("rgb and depth must be torch tensors (use asymformer.Segmenter for images/arrays)")
        if rgb.ndim != 4 or rgb.shape[1] != 3:
            raise ValueError(f"rgb must be B×3×H×W, got shape {tuple(rgb.shape)}")
        if depth.ndim != 4 or depth.shape[1] != self.depth_in_chans:
            raise ValueError(f"depth must be B×{self.depth_in_chans}×H×W, got shape {tuple(depth.shape)}")
        if rgb.shape[0] != depth.shape[0] or rgb.shape[2:] != depth.shape[2:]:
            raise ValueError(f"rgb {tuple(rgb.shape)} and depth {tuple(depth.shape)} differ in batch or size")
        if not (rgb.is_floating_point() and depth.is_floating_point()):
            raise ValueError(f"rgb and depth must be normalised float tensors, got {rgb.dtype} and {depth.dtype} "
                             "(see asymformer.data.transforms.normalize)")
        if rgb.shape[2] < 32 or rgb.shape[3] < 32:
            raise ValueError(f"input must be at least 32×32, got {rgb.shape[2]}×{rgb.shape[3]}")

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor, return_attention: bool = False):
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            self._check_inputs(rgb, depth)
        h, w = rgb.shape[2], rgb.shape[3]
        # The network needs multiples of 32: pad bottom/right, crop the logits back. Only when needed,
        # so static 480×640 graphs carry no copies; a tracer records the branch taken, which is why
        # dynamic ONNX export traces at a size that is not a multiple of 32 (deploy/accel/export.py).
        ph, pw = (-h) % PAD_MULTIPLE, (-w) % PAD_MULTIPLE
        padded = bool(ph or pw)
        if padded:
            rgb = F.pad(rgb, (0, pw, 0, ph), mode="replicate")
            depth = F.pad(depth, (0, pw, 0, ph), mode="replicate")
        feats, maps = [], []
        for stage in self.stages:
            rgb, depth, m = stage(rgb, depth, return_map=return_attention)
            feats.append(depth)
            if m is not None:
                maps.append(m)
        logits = self.Decoder(feats, (h + ph, w + pw))
        if padded:
            logits = logits[:, :, :h, :w]
        return (logits, maps) if return_attention else logits

    @torch.no_grad()
    def fuse(self) -> AsymFormer:
        """Fold BatchNorms and affine layers for inference, in place, in eval mode; returns self.

        Every block that owns a re-parameterisation applies it to its own layers (`fuse()` on
        ConvNeXtBlock, Fusion, CMA, MHSA, MLPDecoder); the model keeps its device and dtype.
        Calling it twice is a no-op.
        """
        self.eval()
        if not self.info.fused:
            for m in list(self.modules()):
                if m is not self and callable(getattr(m, "fuse", None)):
                    m.fuse()
            self.info = self.info.replace(fused=True)
        return self


_SEQUENCES = ("rgb_dims", "rgb_depths", "depth_dims", "depth_heads", "depth_depths", "sr_ratios")
_INTS = ("depth_in_chans", "decoder_dim")
_RATES = ("rgb_drop_path", "depth_drop_path", "attn_drop", "decoder_dropout")


def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _check_arguments(num_classes, kwargs: dict) -> None:
    """create_model's arguments checked where the user passed them, not as a torch TypeError deep inside."""
    if not _is_int(num_classes) or num_classes < 1:
        raise ValueError(f"create_model: num_classes must be an integer >= 1, got {num_classes!r} "
                         f"({type(num_classes).__name__})")
    known = set(inspect.signature(AsymFormer.__init__).parameters) - {"self", "num_classes"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"create_model: unknown argument {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for key, value in kwargs.items():
        if key in _SEQUENCES and (not isinstance(value, list | tuple) or len(value) != 4
                                  or not all(_is_int(v) and v >= 1 for v in value)):
            raise ValueError(f"create_model: {key} must be 4 integers >= 1 (one per stage), got {value!r}")
        if key in _INTS and (not _is_int(value) or value < 1):
            raise ValueError(f"create_model: {key} must be an integer >= 1, got {value!r}")
        if key in _RATES and (isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1):
            raise ValueError(f"create_model: {key} must be a rate in [0, 1), got {value!r}")


def list_models() -> list[str]:
    return sorted(VARIANTS)


def create_model(name: str = "asymformer_b0_t", num_classes: int = 40, **kwargs) -> AsymFormer:
    """Build a variant by name; keyword arguments override its defaults (e.g. fusion="cat")."""
    if not isinstance(name, str) or name not in VARIANTS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    _check_arguments(num_classes, kwargs)
    cfg = {**VARIANTS[name], **kwargs}
    model = AsymFormer(num_classes=num_classes, **cfg)
    model.info = ModelInfo(name=name, num_classes=num_classes, kwargs=kwargs)
    return model
