"""One training loop for every model, with checkpoints and a scalar log."""
