"""One-solution search methods (RSO, per-parameter grid search, (1+1) local search, hybrids)."""
