"""Moved to asymformer.outputs.rerun_view; this old path serves that module, with a
DeprecationWarning, until 0.3."""

from asymformer.deprecation import moved_module

moved_module(__name__, "asymformer.outputs.rerun_view")
