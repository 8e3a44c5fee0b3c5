"""Training and evaluation: config, loop, metrics, checkpoints, distributed helpers.

Imported eagerly (only torch/tqdm; data and models load when a run builds them): the functions
`train` and `evaluate` share their names with the submodules, and a lazy lookup would return
the module once something imported it.
"""

from .config import TrainConfig, resolve_config
from .evaluate import evaluate_checkpoint, evaluate_model
from .metrics import ConfusionMatrix, metrics_from_confusion
from .schedule import WarmupPoly
from .train import train, train_step

evaluate = evaluate_checkpoint

__all__ = ["ConfusionMatrix", "TrainConfig", "WarmupPoly", "evaluate", "evaluate_checkpoint", "evaluate_model",
           "metrics_from_confusion", "resolve_config", "train", "train_step"]
