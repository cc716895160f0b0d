"""The package's map, written once: the lesson areas, the other subpackages and the layers.

Everything that needs the list of areas reads it from here: the lazy public API
(`dlnb/__init__.py`), the dataset registry (each area's catalog modules), the layout tests and the
layering test (`tests/test_layers.py`). This module imports nothing from dlnb.

Adding a lesson area is one edit: a line in `LESSON_AREAS` naming the subpackage and the modules in
it that register datasets (possibly none).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The lesson areas, one subpackage each, mapped to their modules that register datasets when
#: imported (`dlnb.data.registry` imports them by name; see `catalog_modules`).
LESSON_AREAS: dict[str, tuple[str, ...]] = {
    "vision": ("datasets", "cifar"),
    "text": ("datasets",),
    "tabular": ("catalog",),
    "lm": ("assets",),
}

#: The subpackages that are not lesson areas: what every lesson builds on, and what it ships with.
SUBPACKAGES: tuple[str, ...] = ("data", "train", "interpret", "deploy", "lifecycle")

#: The package face: the public API, the command line and the scripts it launches.
FACE: tuple[str, ...] = ("__init__", "__main__", "scripts")


@dataclass(frozen=True)
class Layer:
    """One layer: its members (top-level modules or subpackages of dlnb, named without `dlnb.`).

    A member imports from lower layers and from itself. Members of an `isolated` layer never import
    each other (the areas: vision, text and tabular stay independent).
    """

    name: str
    members: tuple[str, ...]
    isolated: bool = False


#: The layers, low to high.
LAYERS: tuple[Layer, ...] = (
    Layer("core", ("runtime", "recording", "areas")),
    Layer("foundations", ("claims", "models", "plots")),
    Layer("data", ("data",)),
    Layer("train", ("train",)),
    Layer("experiments", ("experiments",)),
    Layer("areas", tuple(LESSON_AREAS), isolated=True),
    Layer("tools", ("interpret", "deploy"), isolated=True),
    Layer("lifecycle", ("lifecycle",)),
    Layer("face", FACE),
)

#: The single-file modules at the top of the package (`dlnb/<name>.py`), outside the face.
CORE: tuple[str, ...] = tuple(
    m
    for layer in LAYERS
    for m in layer.members
    if m not in LESSON_AREAS and m not in SUBPACKAGES and m not in FACE
)

#: What `from dlnb import <name>` gives as a namespace (imported lazily by `dlnb/__init__.py`).
NAMESPACES: tuple[str, ...] = (
    *SUBPACKAGES,
    *LESSON_AREAS,
    *(m for m in CORE if m not in ("areas", "recording")),
)


def catalog_modules() -> tuple[str, ...]:
    """Every module that registers datasets, e.g. `dlnb.vision.datasets`, areas in order."""
    return tuple(
        f"dlnb.{area}.{module}" for area, modules in LESSON_AREAS.items() for module in modules
    )


def layer_of(member: str) -> int:
    """The index in `LAYERS` of `member` (a top-level module or subpackage name, e.g. `data`)."""
    for index, layer in enumerate(LAYERS):
        if member in layer.members:
            return index
    raise KeyError(
        f"dlnb.{member} is in no layer: add it to dlnb/areas.py (LESSON_AREAS for a lesson area)."
    )
