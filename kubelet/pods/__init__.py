"""Pod lifecycle: the pure model, planner, back-off and status derivation (no I/O here).
Workers, executors and the status manager that act on these live elsewhere and import them.
"""
