"""dlnb.record: validates, appends JSON lines for the runner, shows a summary, keeps values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dlnb import recording as rec


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """Each test starts with no recorded values and no record file."""
    monkeypatch.setattr(rec, "_values", {})
    monkeypatch.delenv("DLNB_RECORD_FILE", raising=False)


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_appends_one_json_line_per_call_when_the_runner_sets_the_file(tmp_path, monkeypatch):
    path = tmp_path / "records.jsonl"
    monkeypatch.setenv("DLNB_RECORD_FILE", str(path))
    rec.record("test_accuracy", 0.9912)
    rec.record("model", "lenet5")
    rec.record("converged", True)
    rec.record("test_accuracy", 0.9921)
    assert lines(path) == [
        {"name": "test_accuracy", "value": 0.9912},
        {"name": "model", "value": "lenet5"},
        {"name": "converged", "value": True},
        {"name": "test_accuracy", "value": 0.9921},
    ]
    assert rec.recorded() == {"test_accuracy": 0.9921, "model": "lenet5", "converged": True}


def test_without_the_env_var_nothing_is_written_but_values_are_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rec.record("loss", 0.25)
    assert list(tmp_path.iterdir()) == []
    assert rec.recorded() == {"loss": 0.25}


def test_prints_a_one_line_summary_outside_a_notebook(capsys):
    rec.record("test_accuracy", 0.991234)
    rec.record("model", "lenet5")
    assert capsys.readouterr().out.splitlines() == ["test_accuracy = 0.9912", "model = 'lenet5'"]


def test_recorded_returns_a_copy():
    rec.record("a", 1)
    rec.recorded()["a"] = 2
    assert rec.recorded() == {"a": 1}


def test_numpy_scalars_become_plain_json_numbers(tmp_path, monkeypatch):
    path = tmp_path / "records.jsonl"
    monkeypatch.setenv("DLNB_RECORD_FILE", str(path))
    rec.record("acc", np.float32(0.5))
    rec.record("n", np.int64(7))
    assert lines(path) == [{"name": "acc", "value": 0.5}, {"name": "n", "value": 7}]
    assert type(rec.recorded()["n"]) is int


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), np.float64("nan")])
def test_non_finite_values_are_rejected(value, tmp_path, monkeypatch):
    monkeypatch.setenv("DLNB_RECORD_FILE", str(tmp_path / "r.jsonl"))
    with pytest.raises(ValueError, match="not finite"):
        rec.record("loss", value)
    assert not (tmp_path / "r.jsonl").exists()
    assert rec.recorded() == {}


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (torch.tensor(0.5), r"\.item\(\)"),
        (np.array([1.0, 2.0]), r"\.item\(\)"),
        ([0.5], "list"),
        (None, "NoneType"),
        (1 + 2j, "complex"),
    ],
)
def test_unsupported_types_are_a_type_error(value, hint):
    with pytest.raises(TypeError, match=hint):
        rec.record("m", value)


@pytest.mark.parametrize("name", ["", "1st", "test accuracy", "acc/top1", None, 3])
def test_names_must_be_identifier_like(name):
    with pytest.raises(ValueError, match="identifier-like"):
        rec.record(name, 1.0)


def test_dotted_names_are_allowed():
    rec.record("valid.accuracy_top1", 0.5)
    assert rec.recorded() == {"valid.accuracy_top1": 0.5}


def test_no_gpu_peak_is_written_without_cuda_use(tmp_path, monkeypatch):
    path = tmp_path / "records.jsonl"
    monkeypatch.setenv("DLNB_RECORD_FILE", str(path))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    rec.record("acc", 0.5)
    assert "gpu_peak_bytes" not in lines(path)[0]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_peak_is_written_after_cuda_use(tmp_path, monkeypatch):
    path = tmp_path / "records.jsonl"
    monkeypatch.setenv("DLNB_RECORD_FILE", str(path))
    block = torch.ones(64, 2**20, device="cuda")  # 256 MiB
    rec.record("acc", 0.5)
    del block
    assert lines(path)[0]["gpu_peak_bytes"] >= 256 * 2**20


def test_record_many_records_every_value_and_shows_one_table(tmp_path, monkeypatch, capsys):
    path = tmp_path / "records.jsonl"
    monkeypatch.setenv("DLNB_RECORD_FILE", str(path))
    rec.record_many({"acc": 0.5, "model": "mlp", "converged": True})
    assert lines(path) == [
        {"name": "acc", "value": 0.5},
        {"name": "model", "value": "mlp"},
        {"name": "converged", "value": True},
    ]
    assert rec.recorded() == {"acc": 0.5, "model": "mlp", "converged": True}
    # outside a notebook the one table is printed once, one line per value
    assert capsys.readouterr().out.splitlines() == [
        "acc = 0.5",
        "model = 'mlp'",
        "converged = True",
    ]


def test_shown_together_holds_every_line_until_the_block_ends(monkeypatch):
    shown = []
    monkeypatch.setattr(rec, "show", shown.append)
    with rec.shown_together():
        rec.record("a", 1)
        with rec.shown_together():  # an inner block (record_many) joins the outer table
            rec.record_many({"b": 2})
        assert shown == []
    assert len(shown) == 1 and shown[0].rows == [("a", 1), ("b", 2)]
    rec.record("c", 3)  # after the block, one line again
    assert str(shown[-1]) == "c = 3" and not hasattr(shown[-1], "rows")


def test_the_table_puts_an_effects_five_values_on_one_row(monkeypatch):
    shown = []
    monkeypatch.setattr(rec, "show", shown.append)
    effect = {"e_diff": 0.01, "e_low": -0.002, "e_high": 0.022, "e_n": 3, "e_verdict": "better"}
    rec.record_many({"runs": 4, **effect, "e_low_bound_note": "kept"})
    table = shown[0]._repr_markdown_()
    assert "| `e_*` | 0.01 (95 % CI -0.002 to 0.022, n 3): better |" in table
    assert "| `runs` | 4 |" in table and "| `e_low_bound_note` | 'kept' |" in table
    assert "e_high" not in table and table.startswith("**recorded** 7 values")


def test_a_failed_record_inside_a_block_still_shows_what_was_recorded(monkeypatch):
    shown = []
    monkeypatch.setattr(rec, "show", shown.append)
    with pytest.raises(ValueError, match="not finite"), rec.shown_together():
        rec.record("a", 1)
        rec.record("b", float("nan"))
    assert shown[0].rows == [("a", 1)] and rec.recorded() == {"a": 1}
