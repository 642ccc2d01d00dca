"""ASAP for DGM4."""
