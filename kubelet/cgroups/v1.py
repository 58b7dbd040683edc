"""The cgroup v1 writer: one directory per controller hierarchy (cpu, memory, pids, cpuset...),
with cpu.shares, cpu.cfs_quota_us/period_us, memory.limit_in_bytes and pids.max.
"""

from __future__ import annotations

from pathlib import Path

from kubelet.cgroups import writer as w
from kubelet.cgroups.host import V1
from kubelet.cgroups.planner import Resources


class V1Writer:
    version = V1

    def __init__(self, mounts: dict[str, Path], other: tuple[Path, ...] = ()) -> None:
        self.mounts = dict(mounts)
        self.other = other
        """Hierarchies only cleaned up (the runtime makes the pod's path there too)."""

    def _paths(self, parts: w.Parts) -> dict[str, Path]:
        return {name: mount.joinpath(*parts) for name, mount in self.mounts.items()}

    def _unique(self, parts: w.Parts) -> list[Path]:
        """One path per hierarchy (cpu and cpuacct may share a mount), the others included."""
        others = [m.joinpath(*parts) for m in self.other]
        return list(dict.fromkeys([*self._paths(parts).values(), *others]))

    def ensure(self, parts: w.Parts, res: Resources) -> None:
        for name, mount in self.mounts.items():
            path = mount
            for part in parts:
                parent, path = path, path / part
                if w.mkdir(path) and name == "cpuset":
                    _inherit_cpuset(parent, path)
        self._apply(self._paths(parts), res)

    def _apply(self, paths: dict[str, Path], res: Resources) -> None:
        cpu = paths.get("cpu")
        if cpu is not None:
            if res.cpu_shares is not None:
                w.write(cpu / "cpu.shares", str(res.cpu_shares))
            if res.cpu_period is not None:
                w.write(cpu / "cpu.cfs_period_us", str(res.cpu_period))
            if res.cpu_quota is not None:
                w.write(cpu / "cpu.cfs_quota_us", str(res.cpu_quota if res.cpu_quota > 0 else -1))
        memory = paths.get("memory")
        if memory is not None and res.memory_limit:
            w.write(memory / "memory.limit_in_bytes", str(res.memory_limit))
        pids = paths.get("pids")
        if pids is not None and res.pids_limit is not None:
            w.write(pids / "pids.max", str(res.pids_limit) if res.pids_limit > 0 else "max")

    def exists(self, parts: w.Parts) -> bool:
        return any(p.is_dir() for p in self._unique(parts))

    def absent(self, parts: w.Parts) -> list[str]:
        return sorted(name for name, path in self._paths(parts).items() if not path.is_dir())

    def children(self, parts: w.Parts) -> list[str]:
        names: set[str] = set()
        for p in self._unique(parts):
            if p.is_dir():
                names.update(c.name for c in p.iterdir() if c.is_dir())
        return sorted(names)

    def procs(self, parts: w.Parts) -> list[int]:
        pids: set[int] = set()
        for p in self._unique(parts):
            pids.update(w.procs_under(p))
        return sorted(pids)

    def remove(self, parts: w.Parts) -> bool:
        if self.procs(parts):
            return False
        return all([w.rmdir_tree(p) for p in self._unique(parts)])

    def memory_working_set(self, parts: w.Parts) -> int | None:
        memory = self._paths(parts).get("memory")
        if memory is None:
            return None
        usage = w.read(memory / "memory.usage_in_bytes")
        if usage is None or not usage.strip().isdigit():
            return None
        inactive = w.stat_value(w.read(memory / "memory.stat"), "total_inactive_file") or 0
        return max(0, int(usage) - inactive)


def _inherit_cpuset(parent: Path, path: Path) -> None:
    """A new v1 cpuset cgroup starts with no CPUs or memory nodes: copy the parent's."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not (w.read(path / name) or "").strip():
            w.write(path / name, (w.read(parent / name) or "").strip())
