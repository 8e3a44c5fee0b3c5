"""AsymFormer: real-time RGB-D semantic segmentation.

The public API is small on purpose (timm / segmentation_models_pytorch style):

    model = asymformer.create_model("asymformer_b0_t", num_classes=40)
    asymformer.load_official_state_dict(model, "ckpt_epoch_500.00.pth")
    model = asymformer.load_model("run/checkpoints/best.safetensors")
    seg = asymformer.Segmenter("ckpt_epoch_500.00.pth")
"""

__version__ = "0.1.0"

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
