"""Carry datasets to an offline room: pack the verified cache into one archive, pull it back."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np

from dlnb.data.registry import (
    ChecksumError,
    cache_path,
    data_dir,
    get_spec,
    load,
    names,
    open_member,
    read_cache,
    store_cache,
    verify_arrays,
)

MANIFEST = "dlnb-data.json"


def pull(dataset_names: list[str] | None = None) -> dict[str, dict[str, str]]:
    """Load (download or read from an offline mirror) and cache each dataset; return digests."""
    digests = {}
    for name in dataset_names or names():
        digests[name] = get_spec(name).digest(load(name))
    return digests


def verify(dataset_names: list[str] | None = None) -> dict[str, str]:
    """Check each cached dataset against its checksums: "ok", "not cached" or the error."""
    results = {}
    for name in dataset_names or names():
        path = cache_path(name)
        if not path.exists():
            results[name] = "not cached"
            continue
        try:
            read_cache(get_spec(name))  # an unreadable or altered cache is a ChecksumError
            results[name] = "ok"
        except ChecksumError as exc:
            results[name] = f"FAILED: {exc}"
    return results


def pack(archive: str | Path, dataset_names: list[str] | None = None) -> Path:
    """Write the cached (pulled first if needed) datasets and their digests into one tar file."""
    archive = Path(archive)
    digests = pull(dataset_names)
    with tarfile.open(archive, "w") as tar:
        for name in digests:
            tar.add(cache_path(name), arcname=f"{name}/{name}.npz")
        payload = json.dumps({"datasets": digests}, indent=2).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return archive


def _unreadable(archive: Path, exc: Exception) -> ChecksumError:
    return ChecksumError(
        f"archive {archive}",
        "a readable tar file",
        f"unreadable ({exc})",
        "The archive is corrupt or truncated: copy it again.",
    )


def unpack(archive: str | Path) -> list[str]:
    """Restore datasets from an archive written by `pack`, verifying each before it is cached."""
    archive = Path(archive)
    if not archive.exists():
        raise FileNotFoundError(
            f"Archive {archive} does not exist. Make one with `python -m dlnb data pack FILE`."
        )
    restored = []
    try:
        tar = tarfile.open(archive, "r")
    except tarfile.TarError as exc:
        raise _unreadable(archive, exc) from exc
    with tar:
        try:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
        except (tarfile.TarError, EOFError) as exc:  # truncated inside a member
            raise _unreadable(archive, exc) from exc
        if MANIFEST not in members:
            raise ValueError(
                f"{archive} has no {MANIFEST}: it was not written by `dlnb data pack`."
            )
        listed = json.loads(open_member(tar, members[MANIFEST]).read())["datasets"]
        for name in listed:
            member = members.get(f"{name}/{name}.npz")
            if member is None:
                raise ValueError(
                    f"{archive} lists {name!r} but does not contain it: pack it again."
                )
            try:
                with np.load(
                    io.BytesIO(open_member(tar, member).read()), allow_pickle=False
                ) as npz:
                    arrays = {k: npz[k] for k in npz.files}
            except Exception as exc:
                raise ChecksumError(
                    f"{name} in archive {archive}",
                    "a readable npz",
                    f"unreadable ({exc})",
                    "The archive is corrupt or truncated: copy it again.",
                ) from exc
            spec = get_spec(name)
            digest = verify_arrays(spec, arrays, f"{archive}:{member.name}")
            if digest != listed[name]:
                raise ChecksumError(
                    f"{name} in archive {archive}",
                    str(listed[name]),
                    str(digest),
                    "The archive was altered after packing: pack it again.",
                )
            store_cache(spec, arrays)
            restored.append(name)
    return restored


__all__ = ["pack", "pull", "unpack", "verify", "data_dir"]
