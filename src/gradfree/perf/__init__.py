"""Performance measurements (``gradfree perf ...``): programs that print measured rates and ratios, sharing one
timing and table helper (:mod:`gradfree.perf.common`)."""
