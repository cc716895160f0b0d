"""Training scripts to run with `python -m` or under torchrun (see `dlnb.launch`)."""
