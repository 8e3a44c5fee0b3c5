"""Training and evaluation: config, loop, metrics, checkpoints, distributed helpers.

Exports resolve lazily so `import asymformer.engine` does not pull the data or model code.
"""

_EXPORTS = {
    "TrainConfig": "asymformer.engine.config",
    "resolve_config": "asymformer.engine.config",
    "train": "asymformer.engine.train",
    "train_step": "asymformer.engine.train",
    "evaluate": "asymformer.engine.evaluate",
    "evaluate_checkpoint": "asymformer.engine.evaluate",
    "evaluate_model": "asymformer.engine.evaluate",
    "ConfusionMatrix": "asymformer.engine.metrics",
    "metrics_from_confusion": "asymformer.engine.metrics",
    "WarmupPoly": "asymformer.engine.schedule",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        attr = "evaluate_checkpoint" if name == "evaluate" else name
        return getattr(importlib.import_module(_EXPORTS[name]), attr)
    raise AttributeError(f"module 'asymformer.engine' has no attribute {name!r}")
