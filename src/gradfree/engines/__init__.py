"""Fast evaluation engines: paths that answer an objective's questions without a full forward pass each.

:mod:`gradfree.engines.incremental` holds the single-weight engines (what is the loss if weight ``i`` took
other values?) and their numba kernels.
"""
