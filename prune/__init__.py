"""Pruning and regeneration on one mask engine: criticality, SCA, Grad R, PQ-index and baselines."""
