"""Carry datasets to an offline room: pack the verified cache into one archive, pull it back."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from dlnb.data.registry import (
    ChecksumError,
    DatasetSpec,
    cache_path,
    get_spec,
    load,
    names,
    open_member,
    read_cache,
    read_sidecar,
    store_cache,
    verify_arrays,
)

MANIFEST = "dlnb-data.json"
#: The most a manifest, and a dataset that does not declare its `expected_bytes`, may hold.
MANIFEST_LIMIT, DEFAULT_LIMIT = 1 << 20, 1 << 30


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
            spec = get_spec(name)
            read_cache(spec)  # an unreadable or altered cache is a ChecksumError
            results[name] = "ok" if spec.checksums else _unpinned_status(name)
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


def _unpinned_status(name: str) -> str:
    """How far a dataset without pinned checksums is verified."""
    note = read_sidecar(name).get("_note")
    if note:
        return f"ok (UNVERIFIED: {note})"
    return (
        "ok (no pinned checksums: matches the digest recorded when it was cached from its source)"
    )


def _size_limit(spec: DatasetSpec) -> int:
    """The most bytes an archive may hold for `spec`: twice its expected size plus 1 MiB."""
    return 2 * spec.expected_bytes + (1 << 20) if spec.expected_bytes else DEFAULT_LIMIT


def _unreadable(archive: Path, exc: Exception) -> ChecksumError:
    return ChecksumError(
        f"archive {archive}",
        "a readable tar file",
        f"unreadable ({type(exc).__name__}: {exc})",
        "The archive is corrupt or truncated: copy it again.",
    )


def _refused(archive: Path, what: str, why: str) -> ChecksumError:
    return ChecksumError(
        f"{what} in archive {archive}",
        "a member within its dataset's size bound",
        f"refused before reading: {why}",
        "The archive was not written by `dlnb data pack` for this dataset, or is damaged: pack it "
        "again on the prepared machine.",
    )


def _member_limit(name: str) -> int:
    """The size bound of archive member `name` (a manifest, or `<dataset>/<dataset>.npz`)."""
    if name == MANIFEST:
        return MANIFEST_LIMIT
    dataset, _, base = name.partition("/")
    try:
        return _size_limit(get_spec(dataset)) if base == f"{dataset}.npz" else DEFAULT_LIMIT
    except KeyError:
        return DEFAULT_LIMIT


def _members(tar: tarfile.TarFile, archive: Path) -> dict[str, tarfile.TarInfo]:
    """The archive's regular members, each checked as its header is read (before any seek past it)."""
    members = {}
    for m in tar:
        if m.issparse():
            raise _refused(archive, m.name, "a sparse member (pack never writes one)")
        if m.isfile() and m.size > (limit := _member_limit(m.name)):
            raise _refused(archive, m.name, f"it declares {m.size:,} bytes, over {limit:,}")
        if m.isfile():
            members[m.name] = m
    return members


def _read_manifest(tar: tarfile.TarFile, member: tarfile.TarInfo, archive: Path) -> dict:
    """The archive's {dataset: {array: sha256}}; anything else is a clear error."""
    try:
        listed = json.loads(open_member(tar, member).read())["datasets"]
        ok = isinstance(listed, dict) and all(
            isinstance(d, dict) and all(isinstance(v, str) for v in d.values())
            for d in listed.values()
        )
    except (ValueError, KeyError, TypeError) as exc:
        ok, listed = False, exc
    if not ok:
        raise ValueError(
            f'{archive}: its {MANIFEST} is not the JSON `pack` writes ({{"datasets": {{name: '
            f"{{array: sha256}}}}}}; got {str(listed)[:80]!r}). Pack the archive again."
        )
    return listed


def _read_npz(blob: bytes, limit: int, what: str) -> dict[str, np.ndarray]:
    """The arrays of an npz, refusing (before allocating) entries that declare over `limit` bytes."""
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        total = 0
        for info in z.infolist():
            with z.open(info) as f:
                version = npy_format.read_magic(f)
                read_header = getattr(npy_format, f"read_array_header_{version[0]}_0", None)
                if read_header is None:
                    raise ValueError(f"{what}: {info.filename} has npy format {version}")
                shape, _, dtype = read_header(f)  # the header only: nothing is allocated
            total += max(info.file_size, int(np.prod(shape, dtype=np.float64)) * dtype.itemsize)
            if total > limit:
                raise ValueError(
                    f"{what}: array {info.filename} declares {shape} {dtype}; its arrays would "
                    f"exceed {limit:,} bytes"
                )
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def unpack(archive: str | Path, allow_unverified: bool = False) -> list[str]:
    """Restore datasets from an archive written by `pack`, verifying each before it is cached.

    A dataset without pinned checksums can only be checked against the archive's own manifest:
    it is restored only with `allow_unverified=True`, and `verify` then reports it UNVERIFIED.
    """
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
            members = _members(tar, archive)
        except (tarfile.TarError, EOFError) as exc:  # truncated inside a member
            raise _unreadable(archive, exc) from exc
        if MANIFEST not in members:
            raise ValueError(
                f"{archive} has no {MANIFEST}: it was not written by `dlnb data pack`."
            )
        listed = _read_manifest(tar, members[MANIFEST], archive)
        unpinned = [n for n in listed if get_spec(n).checksums is None]
        if unpinned and not allow_unverified:
            raise ValueError(
                f"{archive} holds {', '.join(unpinned)}, which have no pinned checksums: only the "
                "archive's own manifest vouches for them. Pull them from their source, or restore "
                "them anyway with `--allow-unverified` (`data verify` will say UNVERIFIED)."
            )
        for name in listed:
            member = members.get(f"{name}/{name}.npz")
            if member is None:
                raise ValueError(
                    f"{archive} lists {name!r} but does not contain it: pack it again."
                )
            spec = get_spec(name)
            try:
                arrays = _read_npz(
                    open_member(tar, member).read(), _size_limit(spec), f"{archive}:{member.name}"
                )
            except Exception as exc:
                raise ChecksumError(
                    f"{name} in archive {archive}",
                    "a readable npz",
                    f"unreadable ({type(exc).__name__}: {exc})",
                    "The archive is corrupt or truncated: copy it again.",
                ) from exc
            digest = verify_arrays(spec, arrays, f"{archive}:{member.name}")
            if digest != listed[name]:
                raise ChecksumError(
                    f"{name} in archive {archive}",
                    str(listed[name]),
                    str(digest),
                    "The archive was altered after packing: pack it again.",
                )
            note = f"restored from archive {archive} without pinned checksums"
            store_cache(spec, arrays, note if spec.checksums is None else None)
            restored.append(name)
    return restored


__all__ = ["pack", "pull", "unpack", "verify"]
