"""Loading foreign weights: the official AsymFormer checkpoint and ImageNet backbones.

Every `.pth` is read with `torch.load(..., weights_only=True)`. Foreign key names are mapped onto
ours (which are the 2023 checkpoint's) by small pure functions, so each filter is testable alone.
"""

from __future__ import annotations

import os
import pickle
import re

import torch

from .asymformer import VARIANTS, AsymFormer

MODEL_FILES = "our .safetensors model file or the official .pth checkpoint"


def check_model_path(path, what: str = "checkpoint") -> str:
    """`path` as a str if it is a file; a folder is named as one (with the model files it holds,
    e.g. a training run's checkpoints/), a missing path as missing."""
    path = os.fspath(path)
    if os.path.isdir(path):
        found = []
        for sub in ("", "checkpoints"):
            folder = os.path.join(path, sub)
            if os.path.isdir(folder):
                found += sorted(os.path.join(folder, f) for f in os.listdir(folder)
                                if f.endswith((".safetensors", ".pth", ".pt")))
        hint = (f"it holds {', '.join(found[:4])}{' ...' if len(found) > 4 else ''}: pass one of them"
                if found else f"pass {MODEL_FILES}")
        raise IsADirectoryError(f"{what} {path} is a folder, not a model file; {hint}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _looks_like_onnx(path: str) -> bool:
    """ONNX files are protobuf ModelProto: field 1 (ir_version, varint) first, the producer soon after."""
    with open(path, "rb") as f:
        head = f.read(64)
    return path.lower().endswith(".onnx") or (head[:1] == b"\x08" and b"pytorch" in head[:32])


def _read_any_safetensors(path: str) -> dict:
    """The tensors of a safetensors file from another tool, through the audited parser."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as f:
            return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    except SafetensorError as exc:
        reason = str(exc).removeprefix("Error while deserializing header: ")
        raise ValueError(f"{path} has a broken safetensors header ({reason}): the file is damaged or was "
                         "altered; copy it again or download it again") from None


def read_checkpoint(path) -> dict:
    """torch.load a `.pth` safely, with one clear error for a missing or unreadable file, and for
    the files people pass by mistake: an ONNX export, a whole pickled model."""
    path = check_model_path(path)
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":  # any safetensors file (timm's hub weights are model.safetensors)
        return _read_any_safetensors(path)
    if _looks_like_onnx(path):
        raise ValueError(f"{path} is an ONNX model (an exported graph, not trainable weights): run it with "
                         "ONNX Runtime, or pass the .safetensors it was exported from")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors surface deep inside torch: translate them once here
        module = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if module and (".nn.modules." in module.group(1) or module.group(1).startswith("asymformer.")):
            raise ValueError(f"{path} is a whole pickled model ({module.group(1)}, saved with torch.save(model)), "
                             "which is never unpickled here (unpickling runs code); where it was made, save "
                             "the weights instead: asymformer.save_model(model, 'model.safetensors') or "
                             "torch.save(model.state_dict(), 'weights.pth') (a state dict loads with "
                             "model.load_state_dict)") from None
        if isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc):
            raise ValueError(f"{path} is not a PyTorch checkpoint of tensors (damaged, or it holds Python objects "
                             "that are never executed here); download or copy it again") from None
        raise ValueError(f"{path} could not be read as a PyTorch checkpoint with weights_only=True "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); download or copy it "
                         "again") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict or a checkpoint dict")
    return obj


def extract_state_dict(obj: dict, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensors of a training checkpoint ({'state_dict': ...}, {'model': ...}) or a raw state dict."""
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise ValueError(f"{source} contains no tensors (top-level keys: {', '.join(list(obj)[:8])})")
    return sd


def strip_prefix(sd: dict, prefix: str = "module.") -> dict:
    """Remove a DataParallel/DDP prefix if every key has it."""
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def official_to_ours(sd: dict, reference: dict | None = None) -> dict:
    """Map the 2026 repository spelling (SCC.conv_bn.N, 4-D decoder projections) to the 2023 one."""
    out = {}
    for k, v in strip_prefix(sd).items():
        k = k.replace(".SCC.conv_bn.0.", ".SCC.conv1.").replace(".SCC.conv_bn.1.", ".SCC.bn.")
        if re.fullmatch(r"Decoder\.linear_c\d\.proj\.weight", k) and v.ndim == 4:
            v = v.flatten(1)
        out[k] = v
    return out


def describe_official(sd: dict) -> str:
    """A one-line description of what an AsymFormer state dict was built as."""
    parts = []
    pred = sd.get("Decoder.linear_pred.weight")
    if pred is not None:
        parts.append(f"{pred.shape[0]} classes")
    stem = sd.get("down_sample_1.rgb_stem.0.weight")
    if stem is not None:
        dims = stem.shape[0]
        names = [n for n, cfg in VARIANTS.items() if cfg["rgb_dims"][0] == dims]
        parts.append(f"RGB width {dims} ({names[0] if names else 'unknown variant'})")
    depth = sd.get("down_sample_1.depth_stem.proj.weight")
    if depth is not None:
        parts.append(f"{depth.shape[1]}-channel depth input")
    if not parts:
        return "not an AsymFormer state dict (first keys: " + ", ".join(list(sd)[:4]) + ")"
    return ", ".join(parts)


def check_state_dict(model: torch.nn.Module, sd: dict, what: str) -> None:
    """Strict comparison of keys and shapes with one error listing the first differences."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k} {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    if not (missing or unexpected or shapes):
        return
    lines = [f"{what} does not fit this model."]
    if isinstance(model, AsymFormer):
        lines[0] += (f" The file looks like: {describe_official(sd)}; you built {model.num_classes} classes"
                     f" ({model.info.name or 'custom'}).")
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
        if items:
            lines.append(f"  {len(items)} {label}: " + "; ".join(items[:5]) + (" ..." if len(items) > 5 else ""))
    raise ValueError("\n".join(lines))


def check_finite(sd: dict, source: str) -> None:
    """Refuse weights holding NaN/inf: they would give all-zero labels and NaN scores, silently."""
    bad = [(k, int((~torch.isfinite(v)).sum())) for k, v in sd.items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        names = ", ".join(f"{k} ({n} values)" for k, n in bad[:3]) + (" ..." if len(bad) > 3 else "")
        raise ValueError(f"{source} holds NaN/inf weights in {len(bad)} tensor(s): {names}; the run that saved "
                         "it diverged. Use an earlier checkpoint (e.g. checkpoints/best.safetensors or "
                         "epoch_NNN) or resume the run with a lower --lr")


def load_official_state_dict(model: AsymFormer, path_or_state_dict) -> AsymFormer:
    """Load the official checkpoint (file or dict; 2023 or 2026 key spelling; `module.` or not). Strict.

    `model.info` then says what the released weights expect: the NYUv2 normalisation they were
    trained with and, for 40 / 37 classes, the NYUv2 / SUNRGBD class names and colours.
    """
    if model.info.fused:
        raise ValueError("load weights before model.fuse(), not after")
    if isinstance(path_or_state_dict, dict):
        what, obj = "the given state dict", path_or_state_dict
    else:
        what, obj = os.fspath(path_or_state_dict), read_checkpoint(path_or_state_dict)
    sd = official_to_ours(extract_state_dict(obj, what))
    check_state_dict(model, sd, what)
    model.load_state_dict(sd, strict=True)
    model.info = model.info.replace(**official_info_fields(model.num_classes))
    return model


def official_info_fields(num_classes: int | None) -> dict:
    """ModelInfo fields of the released weights: 40 classes are NYUv2's, 37 SUNRGBD's."""
    from asymformer.data.classes import NYU40_CLASSES, NYU40_COLORS, SUN37_CLASSES, SUN37_COLORS

    sets = {40: (NYU40_CLASSES, NYU40_COLORS), 37: (SUN37_CLASSES, SUN37_COLORS)}
    names, colors = sets.get(num_classes, (None, None))
    return {"normalization": "nyuv2_official", "class_names": names, "source": "official checkpoint",
            "colors": None if colors is None else colors.tolist()}


def infer_official_config(sd: dict, source: str) -> tuple[str, int]:
    """(variant name, num_classes) of an official-format state dict."""
    sd = official_to_ours(sd)
    if "Decoder.linear_pred.weight" not in sd or "down_sample_1.rgb_stem.0.weight" not in sd:
        raise ValueError(f"{source} is not an AsymFormer checkpoint: {describe_official(sd)}")
    dims = sd["down_sample_1.rgb_stem.0.weight"].shape[0]
    names = [n for n, cfg in VARIANTS.items() if cfg["rgb_dims"][0] == dims]
    if not names:
        raise ValueError(f"{source}: RGB stem width {dims} matches no variant ({', '.join(VARIANTS)})")
    return names[0], int(sd["Decoder.linear_pred.weight"].shape[0])


# ----------------------------------------------------------------------------- ImageNet backbones
def convnext_meta_to_ours(sd: dict) -> dict:
    """Meta's convnext_*_1k_224_ema.pth: downsample_layers.i / stages.i.k -> down_sample_{i+1}."""
    out = {}
    for k, v in sd.items():
        if m := re.fullmatch(r"downsample_layers\.(\d)\.(\d)\.(weight|bias)", k):
            out[f"down_sample_{int(m[1]) + 1}.rgb_stem.{m[2]}.{m[3]}"] = v
        elif m := re.fullmatch(r"stages\.(\d)\.(\d+)\.(.+)", k):
            out[f"down_sample_{int(m[1]) + 1}.rgb_layer.{m[2]}.{m[3]}"] = v
    return out


_TIMM_BLOCK_RE = r"stages\.(\d)\.blocks\.(\d+)\.(gamma|conv_dw|norm|mlp\.fc1|mlp\.fc2)\.?(weight|bias)?"
_TIMM_BLOCK = {"conv_dw": "dwconv", "norm": "norm", "mlp.fc1": "pwconv1", "mlp.fc2": "pwconv2"}


def convnext_timm_to_ours(sd: dict) -> dict:
    """timm's convnext_*.fb_in1k: stem.*, stages.i.downsample.*, stages.i.blocks.k.{conv_dw, mlp.fc1, ...}."""
    out = {}
    for k, v in sd.items():
        if m := re.fullmatch(r"stem\.(\d)\.(weight|bias)", k):
            out[f"down_sample_1.rgb_stem.{m[1]}.{m[2]}"] = v
        elif m := re.fullmatch(r"stages\.(\d)\.downsample\.(\d)\.(weight|bias)", k):
            out[f"down_sample_{int(m[1]) + 1}.rgb_stem.{m[2]}.{m[3]}"] = v
        elif m := re.fullmatch(_TIMM_BLOCK_RE, k):
            name = "gamma" if m[3] == "gamma" else f"{_TIMM_BLOCK[m[3]]}.{m[4]}"
            if m[3].startswith("mlp") and v.ndim == 4:  # conv_mlp variants store 1x1 convs
                v = v.flatten(1)
            out[f"down_sample_{int(m[1]) + 1}.rgb_layer.{m[2]}.{name}"] = v
    return out


def mit_to_ours(sd: dict, depth_in_chans: int = 1) -> dict:
    """SegFormer's mit_b*.pth: patch_embedN/blockN/normN -> down_sample_N.depth_{stem,layer,norm}.

    The 3-channel stage-1 patch embedding is summed over its input channels to take 1-channel
    depth: a depth image replicated to 3 channels would give exactly the same response.
    """
    out = {}
    for k, v in sd.items():
        if m := re.fullmatch(r"patch_embed(\d)\.(.+)", k):
            if m[1] == "1" and m[2] == "proj.weight" and v.shape[1] != depth_in_chans:
                v = v.sum(dim=1, keepdim=True).repeat(1, depth_in_chans, 1, 1) / depth_in_chans
            out[f"down_sample_{m[1]}.depth_stem.{m[2]}"] = v
        elif m := re.fullmatch(r"block(\d)\.(.+)", k):
            out[f"down_sample_{m[1]}.depth_layer.{m[2]}"] = v
        elif m := re.fullmatch(r"norm(\d)\.(weight|bias)", k):
            out[f"down_sample_{m[1]}.depth_norm.{m[2]}"] = v
    return out


def _load_part(model: AsymFormer, mapped: dict, prefix_re: str, path: str, kind: str) -> int:
    own = model.state_dict()
    wanted = [k for k in own if re.match(prefix_re, k)]
    missing = [k for k in wanted if k not in mapped]
    shapes = [f"{k} {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}"
              for k in wanted if k in mapped and mapped[k].shape != own[k].shape]
    if missing or shapes:
        detail = "; ".join((missing + shapes)[:5])
        raise ValueError(f"{path} does not fit the {kind} branch of {model.info.name or 'this model'} "
                         f"({len(missing)} missing, {len(shapes)} mis-shaped: {detail})")
    model.load_state_dict({k: mapped[k] for k in wanted}, strict=False)
    return len(wanted)


def load_backbone_weights(model: AsymFormer, rgb=None, depth=None) -> dict:
    """Initialise the branches from ImageNet files: ConvNeXt (Meta or timm names) and/or MiT (SegFormer).

    Returns how many tensors each branch received. Fusion and decoder stay randomly initialised.
    """
    report = {}
    if rgb is not None:
        sd = strip_prefix(extract_state_dict(read_checkpoint(rgb), os.fspath(rgb)))
        if any(k.startswith("downsample_layers.") for k in sd):
            mapped = convnext_meta_to_ours(sd)
        elif "stem.0.weight" in sd:
            mapped = convnext_timm_to_ours(sd)
        else:
            raise ValueError(f"{rgb} is not a ConvNeXt checkpoint in Meta (downsample_layers.*) or timm "
                             f"(stem.*, stages.*) naming; first keys: {', '.join(list(sd)[:4])}")
        report["rgb"] = _load_part(model, mapped, r"down_sample_\d\.rgb_", os.fspath(rgb), "RGB (ConvNeXt)")
    if depth is not None:
        sd = strip_prefix(extract_state_dict(read_checkpoint(depth), os.fspath(depth)))
        if not any(k.startswith("patch_embed1.") for k in sd):
            raise ValueError(f"{depth} is not a SegFormer MiT checkpoint (no patch_embed1.*); "
                             f"first keys: {', '.join(list(sd)[:4])}")
        mapped = mit_to_ours(sd, model.depth_in_chans)
        report["depth"] = _load_part(model, mapped, r"down_sample_\d\.depth_", os.fspath(depth), "depth (MiT)")
    return report
