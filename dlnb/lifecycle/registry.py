"""A small on-disk model registry: versions as folders (`v0001`, `v0002`, ...), each written by the
model's own save (dlnb's saving format), and a `current` pointer replaced atomically, so a reader
never sees a half-written version or pointer."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlnb.runtime import atomic_write

__all__ = ["ModelRegistry", "RegistryError", "write_json"]

POINTER = "current"


class RegistryError(RuntimeError):
    """The registry's `current` pointer is missing, corrupt or names no version."""


def write_json(path: str | Path, value: Any) -> Path:
    """Write `value` as JSON to `path` atomically (a temporary file renamed into place)."""
    with atomic_write(path, suffix=".json.tmp") as f:
        f.write(json.dumps(value, indent=1, default=str).encode())
    return Path(path)


class ModelRegistry:
    """Model versions under `root` and the pointer to the one in use."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def versions(self) -> list[str]:
        """The version names, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _is_version(p.name))

    def path(self, version: str) -> Path:
        """The folder of `version` (which must exist)."""
        folder = self.root / version
        if not _is_version(version) or not folder.is_dir():
            raise RegistryError(
                f"{self.root} has no model version {version!r}; it has {self.versions() or 'none'}."
            )
        return folder

    def add(self, save: Callable[[Path], Any]) -> str:
        """A new version: `save(folder)` writes the model into a temporary folder, renamed into
        place only when it succeeded; returns its name."""
        self.root.mkdir(parents=True, exist_ok=True)
        existing = self.versions()
        version = f"v{int(existing[-1][1:]) + 1 if existing else 1:04d}"
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".incoming-"))
        try:
            save(tmp)
            os.replace(tmp, self.root / version)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return version

    def current(self) -> str:
        """The version in use, read from the pointer; a clear error when it cannot be trusted."""
        pointer = self.root / POINTER
        fix = (
            f"Point it at a saved version ({self.versions() or 'none saved yet'}) with "
            f"ModelRegistry({str(self.root)!r}).promote(version)."
        )
        if not pointer.is_file():
            raise RegistryError(f"The registry pointer {pointer} is missing. {fix}")
        try:
            version = json.loads(pointer.read_text())["version"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(
                f"The registry pointer {pointer} is corrupt ({type(exc).__name__}: {exc}). {fix}"
            ) from exc
        if not isinstance(version, str) or not (self.root / version).is_dir():
            raise RegistryError(
                f"The registry pointer {pointer} names {version!r}, which is not a saved version. "
                f"{fix}"
            )
        return version

    def promote(self, version: str) -> None:
        """Make `version` the current one (the pointer is replaced atomically)."""
        self.path(version)
        write_json(self.root / POINTER, {"version": version})


def _is_version(name: str) -> bool:
    return len(name) == 5 and name[0] == "v" and name[1:].isdigit()
