"""Data: the dataset registry with verified sources, loaders, GPU-resident loading, archives.

What notebooks and users call: `load` and `make_loaders`, per-class subsets, the registry's
types to add a dataset of your own (`register(DatasetSpec(...))`), the errors a failed load
raises, and the archive functions behind `python -m dlnb data`. The helpers the areas build on
(cache paths, checksums of files and arrays, index splits, batch augmentation) are imported from
their modules: `dlnb.data.registry`, `dlnb.data.loaders`, `dlnb.data.resident`.
"""

from __future__ import annotations

from dlnb.data.archive import pack, pull, unpack, verify
from dlnb.data.loaders import Loaders, make_loaders, per_class_subset
from dlnb.data.registry import (
    ChecksumError,
    DatasetSpec,
    DatasetUnavailable,
    GeneratedSource,
    PackageSource,
    RemoteFile,
    UrlSource,
    download,
    get_spec,
    load,
    names,
    register,
)
from dlnb.data.resident import GpuLoader

__all__ = [
    "DatasetUnavailable",
    "ChecksumError",
    "RemoteFile",
    "UrlSource",
    "PackageSource",
    "GeneratedSource",
    "DatasetSpec",
    "register",
    "names",
    "get_spec",
    "download",
    "load",
    "Loaders",
    "make_loaders",
    "per_class_subset",
    "GpuLoader",
    "pull",
    "verify",
    "pack",
    "unpack",
]
