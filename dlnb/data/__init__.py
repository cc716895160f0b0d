"""Data: the dataset registry with verified sources, loaders, GPU-resident loading, archives."""

from __future__ import annotations

from dlnb.data.archive import pack, pull, unpack, verify
from dlnb.data.loaders import (
    Loaders,
    TransformDataset,
    make_loaders,
    split_indices,
    subset_indices,
)
from dlnb.data.registry import (
    ChecksumError,
    DatasetSpec,
    DatasetUnavailable,
    GeneratedSource,
    PackageSource,
    RemoteFile,
    UrlSource,
    cache_path,
    data_dir,
    digest_path,
    download,
    get_spec,
    load,
    names,
    read_cache,
    register,
    sha256_file,
    store_cache,
    verify_arrays,
)
from dlnb.data.resident import GpuLoader, gpu_loaders, random_flip, random_translate

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
    "data_dir",
    "cache_path",
    "sha256_file",
    "verify_arrays",
    "read_cache",
    "digest_path",
    "store_cache",
    "download",
    "load",
    "Loaders",
    "TransformDataset",
    "split_indices",
    "subset_indices",
    "make_loaders",
    "random_translate",
    "random_flip",
    "GpuLoader",
    "gpu_loaders",
    "pull",
    "verify",
    "pack",
    "unpack",
]
