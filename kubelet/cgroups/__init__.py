"""Pod cgroups: host detection (v1/v2, driver), the pure planner, the v1 and v2 writers and the
manager that keeps kubepods / QoS tiers / pod<uid> cgroups as upstream lays them out.
"""
