"""Data: seeded 2D toy sets (`toy`) and small image sets (`images`, loaded on first use)."""
import importlib

from . import toy
from .toy import get_toy, toy_gmm


def __getattr__(name):
    if name == "images":
        return importlib.import_module(f"{__name__}.images")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
