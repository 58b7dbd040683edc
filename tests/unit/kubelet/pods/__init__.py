"""Unit tests of the pure pod lifecycle core: model, planner, back-off, status derivation."""
