"""The jobs behind the entry points in `src/` (train, eval); each entry point is a thin Hydra wrapper."""
