import IPython
import pytest

from dlnb import display


class ZMQInteractiveShell:
    """Stands in for the shell of a Jupyter kernel (only its class name matters)."""


class TerminalInteractiveShell:
    """Stands in for the terminal IPython shell."""


@pytest.fixture
def jupyter(monkeypatch):
    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())


def test_plain_python_is_not_a_notebook_and_is_headless(monkeypatch):
    monkeypatch.delenv("DLNB_HEADLESS", raising=False)
    assert display.in_notebook() is False
    assert display.is_headless() is True


def test_terminal_ipython_is_not_a_notebook(monkeypatch):
    monkeypatch.delenv("DLNB_HEADLESS", raising=False)
    monkeypatch.setattr(IPython, "get_ipython", lambda: TerminalInteractiveShell())
    assert display.in_notebook() is False
    assert display.is_headless() is True


def test_a_jupyter_kernel_has_a_front_end(jupyter, monkeypatch):
    monkeypatch.delenv("DLNB_HEADLESS", raising=False)
    assert display.in_notebook() is True
    assert display.is_headless() is False


@pytest.mark.parametrize("value, headless", [("1", True), ("0", False)])
def test_the_runner_marks_a_kernel_headless(jupyter, monkeypatch, value, headless):
    monkeypatch.setenv("DLNB_HEADLESS", value)
    assert display.in_notebook() is True
    assert display.is_headless() is headless


def test_show_prints_outside_a_notebook(capsys):
    display.show({"accuracy": 0.5})
    assert capsys.readouterr().out.strip() == "{'accuracy': 0.5}"


def test_show_displays_in_a_notebook(jupyter, monkeypatch):
    shown = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    display.show("table")
    assert shown == ["table"]
