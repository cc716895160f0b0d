"""dlnb: a Jupyter-first deep-learning toolkit for the notebook curriculum.

The top level holds the names every notebook uses; each curriculum area is a subpackage
(`from dlnb import vision`). Everything is imported lazily (PEP 562), so `import dlnb` stays fast
and pulls in neither torch's heavy extras nor transformers, captum, xgboost or onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dlnb.areas import NAMESPACES

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_API = {
    "fit": "dlnb.train.loop",
    "evaluate": "dlnb.train.loop",
    "predict": "dlnb.train.loop",
    "TrainConfig": "dlnb.train.config",
    "Callback": "dlnb.train.callbacks",
    "EarlyStopping": "dlnb.train.callbacks",
    "load": "dlnb.data.registry",
    "make_loaders": "dlnb.data.loaders",
    "Loaders": "dlnb.data.loaders",
    "pick_device": "dlnb.runtime",
    "seed_everything": "dlnb.runtime",
    "doctor": "dlnb.runtime",
    "Timer": "dlnb.runtime",
    "progress": "dlnb.runtime",
    "record": "dlnb.recording",
    "record_many": "dlnb.recording",
    "shown_together": "dlnb.recording",
}
#: `from dlnb import vision` and the like: the areas, subpackages and core namespaces, listed once
#: in dlnb/areas.py.
_AREAS = NAMESPACES

__all__ = [
    "Callback",
    "EarlyStopping",
    "Loaders",
    "Timer",
    "TrainConfig",
    "__version__",
    "doctor",
    "evaluate",
    "fit",
    "load",
    "make_loaders",
    "pick_device",
    "predict",
    "progress",
    "record",
    "record_many",
    "seed_everything",
    "shown_together",
]
__all__ += _AREAS

if TYPE_CHECKING:
    from dlnb.data.loaders import Loaders, make_loaders
    from dlnb.data.registry import load
    from dlnb.recording import record, record_many, shown_together
    from dlnb.runtime import Timer, doctor, pick_device, progress, seed_everything
    from dlnb.train.callbacks import Callback, EarlyStopping
    from dlnb.train.config import TrainConfig
    from dlnb.train.loop import evaluate, fit, predict


def __getattr__(name: str) -> Any:
    """Import a public name or an area's subpackage on first use."""
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
    elif name in _AREAS:
        value = importlib.import_module(f"dlnb.{name}")
    else:
        raise AttributeError(f"module 'dlnb' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
