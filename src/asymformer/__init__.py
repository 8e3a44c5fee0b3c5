"""AsymFormer: real-time RGB-D semantic segmentation.

The public API is small on purpose (timm / segmentation_models_pytorch style):

    model = asymformer.create_model("asymformer_b0_t", num_classes=40)
    asymformer.load_official_state_dict(model, "ckpt_epoch_500.00.pth")
    model = asymformer.load_model("run/checkpoints/best.safetensors")
    seg = asymformer.Segmenter("ckpt_epoch_500.00.pth")
"""

import os
import sys

__version__ = "0.2.1"

# The oldest torch with every torch API the package calls; the newest of them are ONNX export's
# torch.export.Dim.DYNAMIC and torch.onnx.export(dynamo=..., optimize=...), both new in 2.6
# (README, "Install", lists the others). pyproject.toml's "torch>=" says the same (a test checks).
TORCH_MIN = (2, 6)

# Attribute -> module that defines it. Resolved lazily so `import asymformer` stays cheap
# and the CLI starts fast.
_EXPORTS = {
    "create_model": "asymformer.models",
    "list_models": "asymformer.models",
    "AsymFormer": "asymformer.models",
    "load_official_state_dict": "asymformer.models",
    "load_model": "asymformer.models",
    "save_model": "asymformer.models",
    "Segmenter": "asymformer.deploy",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'asymformer' has no attribute {name!r}")


def _check_torch_version(version: str | None) -> None:
    """ImportError naming the fix when torch `version` is older than TORCH_MIN (None: unknown, passes).

    Older releases would fail later, deep inside an export or a training step, with an error
    about a missing attribute or keyword; this says what to install instead.
    """
    import re

    found = re.match(r"(\d+)\.(\d+)", str(version or ""))
    if found and (int(found[1]), int(found[2])) < TORCH_MIN:
        need = ".".join(map(str, TORCH_MIN))
        raise ImportError(f"asymformer needs torch>={need} (found {version}); pip install 'torch>={need}'")


def _torch_version() -> str | None:
    """torch.__version__, without importing torch when it is not imported yet (that would cost
    `import asymformer`, and `asymformer --help`, a second): torch/version.py is where torch
    itself takes it from. None when neither is there (torch missing: its import fails later)."""
    if "torch" in sys.modules:
        return getattr(sys.modules["torch"], "__version__", None)
    import importlib.util
    import re

    spec = importlib.util.find_spec("torch")
    folders = (spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        try:
            with open(os.path.join(folder, "version.py"), encoding="utf-8") as f:
                found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)", f.read(), re.MULTILINE)
        except OSError:
            continue
        if found:
            return found[1]
    return None


_check_torch_version(_torch_version())
