"""The project's provenance hook: what a run records about this machine and its data.

This is the only module of nbs_ci that knows about dlnb (its device report, its datasets and the
packages of its stack); the runner adds whatever `provenance()` returns to `summary.json`.
"""

from __future__ import annotations

import json
import platform
from typing import Any

PACKAGES = (
    "dlnb",
    "torch",
    "torchvision",
    "numpy",
    "pandas",
    "scikit-learn",
    "matplotlib",
    "transformers",
    "captum",
    "xgboost",
    "onnx",
    "onnxruntime",
    "papermill",
    "nbclient",
    "ipykernel",
    "jupyter_client",
)


def provenance() -> dict[str, Any]:
    """Top-level `summary.json` entries: the device report, package versions, dataset checksums."""
    return {"device": device(), "versions": versions(), "datasets": dataset_checksums()}


def device() -> dict[str, Any]:
    """`dlnb.runtime.doctor`'s report, or the error that stopped it (a broken torch)."""
    try:
        from dlnb.runtime import doctor

        return doctor(display=False)
    except Exception as e:  # a broken torch must not stop the report
        return {"error": f"{type(e).__name__}: {e}"}


def versions() -> dict[str, str | None]:
    """The Python version and each of `PACKAGES`' installed versions (None when missing)."""
    import importlib.metadata as md

    found: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            found[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            found[pkg] = None
    return found


def dataset_checksums() -> dict[str, Any]:
    """Per registered dataset: its array checksums (pinned, or recorded when it was cached for
    datasets without pinned ones) and the sha256 of its cache file, if cached."""
    try:
        from dlnb.data import registry as data

        names = data.names()
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}
    found = {}
    for name in names:
        try:
            spec, path = data.get_spec(name), data.cache_path(name)
            checksums, recorded = spec.checksums, data.digest_path(name)
            if checksums is None and recorded.exists():
                checksums = json.loads(recorded.read_text())
            found[name] = {
                "checksums": checksums,
                "pinned": spec.checksums is not None,
                "cached": path.exists(),
                "cache_file": str(path) if path.exists() else None,
                "cache_sha256": data.sha256_file(path) if path.exists() else None,
            }
        except Exception as e:
            found[name] = {"error": f"{type(e).__name__}: {e}"}
    return found
