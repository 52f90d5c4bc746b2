"""Placeholder `torchaudio` installed by DataFlex's setup (see docs/setup.md).

LLaMA-Factory 0.9.5 imports torchaudio at module level (data/mm_plugin.py) although text training
never uses it, and PyPI has no CPU torchaudio wheel that loads beside torch 2.13.0+cpu. This package
makes that import succeed; anything that actually needs audio fails with a clear message.

It is a real package (it has a module spec), reached through a `.pth` file in the venv's
site-packages. It ships no dist-info, so `transformers.utils.is_torchaudio_available()` stays False
and no library mistakes it for the real thing. Install a torchaudio that matches your torch to use
audio datasets; it takes precedence once installed (the .pth entry is appended to sys.path last).
"""

__version__ = "0.0.0+dataflex.stub"
DATAFLEX_STUB = True

_MESSAGE = (
    "torchaudio.{name} is unavailable: this is DataFlex's placeholder torchaudio (no CPU torchaudio wheel "
    "matches torch 2.13.0). Install a torchaudio build that matches your torch to use audio datasets."
)


class TorchaudioUnavailable(ImportError):
    pass


def _unavailable(name):
    def fn(*args, **kwargs):
        raise TorchaudioUnavailable(_MESSAGE.format(name=name))

    fn.__name__ = name
    return fn


load = _unavailable("load")
save = _unavailable("save")
info = _unavailable("info")

from . import functional  # noqa: E402,F401


def __getattr__(name):
    # An AttributeError (not ImportError) so that hasattr()/feature probes simply see "absent".
    if name.startswith("_"):
        raise AttributeError(name)
    raise AttributeError(_MESSAGE.format(name=name))
