"""dlnb/areas.py: the one list of areas, subpackages and layers the package is checked against."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlnb import areas

PACKAGE = Path(__file__).resolve().parents[1] / "dlnb"


def test_each_member_is_in_exactly_one_layer():
    members = [m for layer in areas.LAYERS for m in layer.members]
    assert len(members) == len(set(members)), members
    assert set(members) == {*areas.CORE, *areas.SUBPACKAGES, *areas.LESSON_AREAS, *areas.FACE}


def test_layers_run_from_the_core_to_the_face():
    order = ["runtime", "claims", "data", "train", "experiments", "vision", "deploy", "lifecycle"]
    assert [areas.layer_of(m) for m in order] == sorted(areas.layer_of(m) for m in order)
    assert len({areas.layer_of(m) for m in order}) == len(order)
    assert areas.layer_of("__init__") == len(areas.LAYERS) - 1
    assert areas.layer_of("areas") == 0  # read by the registry (data), so below everything
    same = {areas.layer_of(a) for a in areas.LESSON_AREAS}
    assert len(same) == 1 and areas.LAYERS[same.pop()].isolated


def test_layer_of_an_unlisted_module_says_where_to_list_it():
    with pytest.raises(KeyError, match="dlnb/areas.py"):
        areas.layer_of("sequences")


def test_catalog_modules_are_each_areas_registering_modules():
    modules = areas.catalog_modules()
    assert modules[:2] == ("dlnb.vision.datasets", "dlnb.vision.cifar")
    assert set(modules) == {
        f"dlnb.{area}.{m}" for area, names in areas.LESSON_AREAS.items() for m in names
    }
    for module in modules:
        path = PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")
        assert "register(" in path.read_text(encoding="utf-8"), f"{module} registers no dataset"


def test_namespaces_are_what_from_dlnb_import_gives():
    assert {"vision", "text", "tabular", "data", "claims", "runtime"} <= set(areas.NAMESPACES)
    assert not {"areas", "recording", "__init__"} & set(areas.NAMESPACES)
