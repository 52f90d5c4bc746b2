"""Placeholder for torchaudio.functional (see the package docstring)."""

from . import _MESSAGE, _unavailable

resample = _unavailable("functional.resample")


def __getattr__(name):
    if name.startswith("_"):
        raise AttributeError(name)
    raise AttributeError(_MESSAGE.format(name=f"functional.{name}"))
