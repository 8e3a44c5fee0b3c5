"""Renamed spellings kept for one release: one notice text for the command line and the API.

A rename must not break a user's script or a file written by the previous release, but two
names for one thing must not last either: the old name keeps working, says what replaces it
and when it goes, and is removed in REMOVED_IN. A leaf module (imports nothing from asymformer at
import time), so data/ and deploy/ can use it as well as the CLI.
"""

from __future__ import annotations

import warnings

REMOVED_IN = "0.3"  # names deprecated in 0.2 are removed then


def notice(old: str, new: str) -> str:
    """The one wording: '<old> is deprecated, use <new> (it will be removed in 0.3)'."""
    return f"{old} is deprecated, use {new} (it will be removed in {REMOVED_IN})"


def renamed_keyword(where: str, old: str, new: str, old_value, new_value, stacklevel: int = 3):
    """The value of keyword `new`, also accepted under its old name `old` with a DeprecationWarning.

    None means "not passed" for both. Passing both is an error rather than a silent choice.
    `stacklevel` 3 points the warning at the caller of the function that calls this.
    """
    if old_value is None:
        return new_value
    if new_value is not None:
        raise TypeError(f"{where}: pass {new}= only ({old}= is its deprecated name)")
    warnings.warn(f"{where}: keyword {notice(old, new)}", DeprecationWarning, stacklevel=stacklevel)
    return old_value


def moved_names(module: str, names: dict[str, str]):
    """A module-level `__getattr__` that still serves names moved elsewhere ("pkg.mod:name"), with a
    DeprecationWarning, for one release; any other missing name is the usual AttributeError."""
    import importlib

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        target_module, _, target = names[name].partition(":")
        warnings.warn(notice(f"{module}.{name}", f"{target_module}.{target}"), DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(target_module), target)

    return __getattr__


def moved_module(old: str, new: str) -> None:
    """Serve module `new` under its old dotted path `old` for one release, with a DeprecationWarning.

    Called by the stub file left at the old path. The old name becomes the new module itself (in
    sys.modules), not a copy of its names: a name read, or patched in a test, through the old path
    is the new module's, and the notice is given once, at the import, pointing at the importer.
    """
    import importlib
    import sys

    module = importlib.import_module(new)
    warnings.warn(notice(old, new), DeprecationWarning, stacklevel=3)  # 3: past the stub, at its importer
    sys.modules[old] = module
