"""dlnb: a Jupyter-first deep-learning toolkit for the notebook curriculum."""

__version__ = "0.1.0"
