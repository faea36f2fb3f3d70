"""Named pipelines that several parts of cgsurg run: written once here, not as strings in each."""

from __future__ import annotations

# Every reflect Pad mirrored by Slice/Concat, written-out instance norms fused, zero pads folded
# into the convolutions: what a compiler wants, exact up to float rounding.
EXACT_COMPILER = "fold-constants,reflect2slice,instancenorm-fusion,pad-conv-fusion"
