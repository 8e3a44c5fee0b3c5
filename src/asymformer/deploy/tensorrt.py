"""Moved to asymformer.deploy.accel.tensorrt; this old path serves that module, with a
DeprecationWarning, until 0.3."""

from asymformer.deprecation import moved_module

moved_module(__name__, "asymformer.deploy.accel.tensorrt")
