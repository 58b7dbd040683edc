"""Node-pressure eviction: signals, thresholds (hard/soft, grace, minimum reclaim), the pure
ranking of pods, node-level reclaim (image and dead-container GC) and the manager loop.
"""
