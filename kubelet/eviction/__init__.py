"""Node-pressure eviction: signals, thresholds (hard/soft, grace, minimum reclaim), the pure
ranking of pods, admission under pressure, OOM-kill detection, node-level reclaim (image and
dead-container GC), the manager loop and its evictions metric.
"""
