"""The cgroup v2 writer: one unified tree; controllers enabled down the path through
cgroup.subtree_control; cpu.weight, cpu.max, memory.max and pids.max.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kubelet.cgroups import writer as w
from kubelet.cgroups.host import V2
from kubelet.cgroups.planner import Resources, cpu_shares_to_weight

log = logging.getLogger(__name__)
WANTED = ("cpu", "cpuset", "memory", "pids", "hugetlb", "io")


class V2Writer:
    version = V2

    def __init__(self, mount: Path) -> None:
        self.mount = mount
        self.missing: set[str] = set()
        """Controllers a write needed but the hierarchy does not offer (logged once each)."""

    def controllers(self, parts: w.Parts) -> set[str]:
        """The controllers available in the cgroup (its cgroup.controllers)."""
        return set((w.read(self.mount.joinpath(*parts, "cgroup.controllers")) or "").split())

    def _enable(self, parent: Path) -> None:
        """Enable, for the children of `parent`, the wanted controllers it has (one write)."""
        have = set((w.read(parent / "cgroup.controllers") or "").split())
        on = set((w.read(parent / "cgroup.subtree_control") or "").split())
        add = [f"+{name}" for name in WANTED if name in have and name not in on]
        if add:
            w.write(parent / "cgroup.subtree_control", " ".join(add))

    def ensure(self, parts: w.Parts, res: Resources) -> None:
        path = self.mount
        for part in parts:
            self._enable(path)
            path = path / part
            w.mkdir(path)
        self._apply(path, res)

    def _set(self, path: Path, controller: str, name: str, value: str) -> None:
        if not (path / name).exists():
            if controller not in self.missing:
                self.missing.add(controller)
                log.warning(
                    "cgroup v2 controller %s not available at %s: %s not set",
                    controller,
                    path,
                    name,
                )
            return
        w.write(path / name, value)

    def _apply(self, path: Path, res: Resources) -> None:
        if res.cpu_shares is not None:
            self._set(path, "cpu", "cpu.weight", str(cpu_shares_to_weight(res.cpu_shares)))
        if res.cpu_quota is not None:
            period = res.cpu_period or 100000
            quota = str(res.cpu_quota) if res.cpu_quota > 0 else "max"
            self._set(path, "cpu", "cpu.max", f"{quota} {period}")
        if res.memory_limit:
            self._set(path, "memory", "memory.max", str(res.memory_limit))
        if res.pids_limit is not None:
            value = str(res.pids_limit) if res.pids_limit > 0 else "max"
            self._set(path, "pids", "pids.max", value)

    def exists(self, parts: w.Parts) -> bool:
        return self.mount.joinpath(*parts).is_dir()

    def absent(self, parts: w.Parts) -> list[str]:
        return [] if self.exists(parts) else [str(self.mount)]

    def children(self, parts: w.Parts) -> list[str]:
        p = self.mount.joinpath(*parts)
        return sorted(c.name for c in p.iterdir() if c.is_dir()) if p.is_dir() else []

    def procs(self, parts: w.Parts) -> list[int]:
        return sorted(set(w.procs_under(self.mount.joinpath(*parts))))

    def remove(self, parts: w.Parts) -> bool:
        if self.procs(parts):
            return False
        return w.rmdir_tree(self.mount.joinpath(*parts))

    def memory_working_set(self, parts: w.Parts) -> int | None:
        p = self.mount.joinpath(*parts)
        current = w.read(p / "memory.current")
        if current is None or not current.strip().isdigit():
            return None
        inactive = w.stat_value(w.read(p / "memory.stat"), "inactive_file") or 0
        return max(0, int(current) - inactive)
