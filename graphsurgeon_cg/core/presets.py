"""Named pipelines that several parts of cgsurg run, built from named pieces: written once
here, composed as values (``core.pipeline.Pipeline``), never as joined strings.

Each prints to the pipeline text ``cgsurg apply --passes`` takes; the targets' presets put
``FOLD`` and their opset pass in front of one of the rewrite sets below.
"""

from __future__ import annotations

from .pipeline import Pipeline

FOLD = Pipeline("fold", "fold-constants")

# Zero pads folded into the convolutions that read them: exact.
ZERO_PADS = Pipeline("zero-pads", "pad-conv-fusion")

# Reflect Pads mirrored by Slice/Concat, then zero pads folded: exact.
EXACT_PADS = Pipeline("exact-pads", "reflect2slice", ZERO_PADS)

# Integer-factor nearest Resize written so that no nearest rounding can change it, then
# ``EXACT_PADS``: for compilers that round nearest Resize their own way (Ascend ATC). Exact.
PORTABLE_EXACT_PADS = Pipeline("portable-exact-pads", "nearest-half-pixel", EXACT_PADS)

# What a compiler wants of a generator that ``FOLD`` already folded: every reflect Pad mirrored
# by Slice/Concat, written-out instance norms fused, zero pads folded into the convolutions.
EXACT_REWRITES = Pipeline("exact-rewrites", "reflect2slice", "instancenorm-fusion", ZERO_PADS)

# ``EXACT_REWRITES`` after folding: exact up to float rounding.
EXACT_COMPILER = Pipeline("exact-compiler", FOLD, EXACT_REWRITES)

# The vendor guide's lossy workaround: reflect Pads become zero pads, folded into convolutions.
VENDOR_PADS = Pipeline("vendor-pads", "reflect2const", ZERO_PADS)

# ``VENDOR_PADS`` with every Resize made nearest: the lossy preset of compilers that reject
# other resize modes.
LOSSY_VENDOR = Pipeline("lossy-vendor", "reflect2const", "resize-nearest", ZERO_PADS)
