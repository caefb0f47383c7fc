"""Files a run writes and reads: atomic writes, checkpoints, rebuilding a model from them."""
