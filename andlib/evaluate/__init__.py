"""Evaluation: last-layer accuracy and simulation scores, concept-specific pruning, and the
pitch networks' evaluation against known bins."""
