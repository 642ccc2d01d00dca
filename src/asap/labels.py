"""Label values that data, losses and metrics agree on (a bottom-layer module: it imports nothing from asap)."""

from __future__ import annotations

# a text position without a label (padding, the removed [CLS]/[SEP]); PyTorch's cross-entropy ignore_index
IGNORE_INDEX = -100
# a patch that PMM (eq. 10-12) leaves out: beyond the hard-negative ring, and every patch of a sample with no box
IGNORE_PATCH = -1
