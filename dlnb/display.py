"""Where is this code running: a notebook with a front end, or headless (papermill, a script)?"""

from __future__ import annotations

import os


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ZMQ-based IPython shell)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def is_headless() -> bool:
    """True when no front end can show live output: not in a notebook, or `DLNB_HEADLESS=1`.

    The notebook runner (papermill) sets `DLNB_HEADLESS=1`, so widgets and live plots render a
    single static figure instead of updating.
    """
    return os.environ.get("DLNB_HEADLESS", "0") == "1" or not in_notebook()


def show(obj) -> None:
    """Display `obj` in a notebook, or print it elsewhere."""
    if in_notebook():
        from IPython.display import display

        display(obj)
    else:
        print(obj)
