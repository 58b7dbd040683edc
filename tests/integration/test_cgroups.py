"""Pod cgroups on this machine's real cgroup v1: Guaranteed pods get <root>/kubepods/pod<uid> with
their limits and every process inside, BestEffort lands under besteffort, deletion removes the
cgroups, a memory hog is OOMKilled and restarted, a pod larger than allocatable is OutOfcpu.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

from cluster import process
from cluster import up as cluster
from cluster.spec import ClusterSpec
from cri import api
from cri.client import RuntimeClient
from kubelet.cgroups import host as cghost
from kubelet.cgroups.manager import CgroupManager
from kubelet.cgroups.planner import node_resources
from kubelet.cgroups.v2 import V2Writer

from .conftest import NODE
from .podutil import (
    Json,
    api_json,
    container,
    create_pod,
    cstatus,
    events,
    get_pod,
    pod_body,
    wait_for,
    wait_pod,
)

CG = Path("/sys/fs/cgroup")
MI = 1024 * 1024


def _root(spec: ClusterSpec) -> str:
    return cluster.cgroup_root(spec).strip("/")


def _sized(name: str, script: str, cpu: str | None, memory: str | None, limits: bool) -> Json:
    c = container(name, script)
    res: dict[str, str] = {}
    if cpu:
        res["cpu"] = cpu
    if memory:
        res["memory"] = memory
    if res:
        c["resources"] = {"requests": dict(res), **({"limits": dict(res)} if limits else {})}
    return c


def _running(pod: Json) -> bool:
    return bool(pod.get("status", {}).get("phase") == "Running")


def _pids(spec: ClusterSpec, uid: str) -> list[int]:
    """The sandbox's and every container's main process, from CRI verbose status."""

    async def go() -> list[int]:
        async with RuntimeClient(f"unix://{spec.containerd_socket}") as rt:
            out = []
            sel = {"io.kubernetes.pod.uid": uid}
            for sb in await rt.list_pod_sandbox(filter=api.PodSandboxFilter(label_selector=sel)):
                st = await rt.pod_sandbox_status(sb.id, verbose=True)
                out.append(int(json.loads(st.info["info"])["pid"]))
            for c in await rt.list_containers(filter=api.ContainerFilter(label_selector=sel)):
                if c.state == api.CONTAINER_RUNNING:
                    cs = await rt.container_status(c.id, verbose=True)
                    out.append(int(json.loads(cs.info["info"])["pid"]))
            return out

    return asyncio.run(go())


def _cgroup_of(pid: int, controller: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            return path
    return ""


def _gone(rel: str) -> bool:
    """No hierarchy (v1 controllers, name=systemd, the hybrid unified one) has the cgroup."""
    return not list(CG.glob(f"*/{rel}"))


def _read(path: Path) -> str:
    return path.read_text().strip()


def test_guaranteed_pod_gets_its_cgroup_and_limits(cluster_spec: ClusterSpec, ns: str) -> None:
    root = _root(cluster_spec)
    body = pod_body(
        "guaranteed",
        [
            _sized("a", "sleep 3600", "200m", "64Mi", limits=True),
            _sized("b", "sleep 3600", "300m", "32Mi", limits=True),
        ],
        grace=1,
    )
    uid = create_pod(cluster_spec, ns, body)["metadata"]["uid"]
    pod = wait_pod(cluster_spec, ns, "guaranteed", _running, 60, "Running")
    assert pod["status"]["qosClass"] == "Guaranteed"
    rel = f"{root}/kubepods/pod{uid}"
    assert _read(CG / "memory" / rel / "memory.limit_in_bytes") == str(96 * MI)
    assert _read(CG / "cpu" / rel / "cpu.cfs_quota_us") == "50000"
    assert _read(CG / "cpu" / rel / "cpu.cfs_period_us") == "100000"
    assert _read(CG / "cpu" / rel / "cpu.shares") == "512"
    pids = wait_for(lambda: (p := _pids(cluster_spec, uid)) and len(p) == 3 and p, 20, "3 pids")
    for pid in pids:
        for controller in ("memory", "cpu", "pids"):
            assert _cgroup_of(pid, controller).startswith(f"/{rel}/"), (pid, controller)
    # the whole pod cgroup holds exactly the pod's processes (pause + 2 sleeps)
    procs = {
        int(p) for d in (CG / "memory" / rel).rglob("cgroup.procs") for p in d.read_text().split()
    }
    assert set(pids) <= procs
    api_json(cluster_spec, f"/api/v1/namespaces/{ns}/pods/guaranteed", method="DELETE")
    wait_for(
        lambda: _gone(rel),
        60,
        "pod cgroup removed",
    )


def test_besteffort_and_burstable_tiers(cluster_spec: ClusterSpec, ns: str) -> None:
    root = _root(cluster_spec)
    be = create_pod(cluster_spec, ns, pod_body("be", [container("c", "sleep 3600")], grace=1))
    bu = create_pod(
        cluster_spec,
        ns,
        pod_body("bu", [_sized("c", "sleep 3600", "250m", "32Mi", limits=False)], grace=1),
    )
    for name in ("be", "bu"):
        wait_pod(cluster_spec, ns, name, _running, 60, "Running")
    be_rel = f"{root}/kubepods/besteffort/pod{be['metadata']['uid']}"
    bu_rel = f"{root}/kubepods/burstable/pod{bu['metadata']['uid']}"
    assert get_pod(cluster_spec, ns, "be")["status"]["qosClass"] == "BestEffort"  # type: ignore[index]
    assert _read(CG / "cpu" / be_rel / "cpu.shares") == "2"
    assert _read(CG / "cpu" / bu_rel / "cpu.shares") == "256"
    assert _read(CG / "cpu" / bu_rel / "cpu.cfs_quota_us") == "-1"
    assert _read(CG / "cpu" / f"{root}/kubepods/besteffort" / "cpu.shares") == "2"
    wait_for(
        lambda: _read(CG / "cpu" / f"{root}/kubepods/burstable" / "cpu.shares") == "256",
        10,
        "burstable tier shares follow the Burstable pods' requests",
    )
    for uid in (be["metadata"]["uid"], bu["metadata"]["uid"]):
        pid = _pids(cluster_spec, uid)[-1]
        assert f"pod{uid}" in _cgroup_of(pid, "memory")
    for name in ("be", "bu"):
        api_json(cluster_spec, f"/api/v1/namespaces/{ns}/pods/{name}", method="DELETE")
    wait_for(
        lambda: _gone(be_rel) and _gone(bu_rel),
        60,
        "pod cgroups removed",
    )


def test_memory_hog_is_oom_killed_and_restarted(cluster_spec: ClusterSpec, ns: str) -> None:
    hog = _sized(
        "hog", "sleep 1; a=$(head -c 200m /dev/zero | tr '\\0' x); sleep 5", "100m", "32Mi", True
    )
    create_pod(cluster_spec, ns, pod_body("hog", [hog], grace=1))

    def oom_restarted(pod: Json) -> bool:
        s = cstatus(pod, "hog")
        return s.get("restartCount", 0) >= 1 and "terminated" in s.get("lastState", {})

    pod = wait_pod(cluster_spec, ns, "hog", oom_restarted, 90, "OOMKilled and restarted")
    last = cstatus(pod, "hog")["lastState"]["terminated"]
    assert last["reason"] == "OOMKilled", last
    assert last["exitCode"] == 137, last
    wait_for(
        lambda: any(e["reason"] == "OOMKilling" for e in events(cluster_spec, ns, "hog")),
        20,
        "OOMKilling event",
    )
    api_json(cluster_spec, f"/api/v1/namespaces/{ns}/pods/hog", method="DELETE")


def test_pod_larger_than_allocatable_is_out_of_cpu(cluster_spec: ClusterSpec, ns: str) -> None:
    create_pod(cluster_spec, ns, pod_body("huge", [_sized("c", "sleep 3600", "1000", None, True)]))
    pod = wait_pod(
        cluster_spec,
        ns,
        "huge",
        lambda p: p.get("status", {}).get("phase") == "Failed",
        30,
        "rejected",
    )
    assert pod["status"]["reason"] == "OutOfcpu"
    assert pod["status"]["message"].startswith(
        "Pod was rejected: Node didn't have enough resource: cpu, requested: 1000000, used: "
    ), pod["status"]["message"]
    assert any(e["reason"] == "OutOfcpu" for e in events(cluster_spec, ns, "huge"))


def test_orphan_pod_cgroup_removed_once_its_processes_are_gone(
    cluster_spec: ClusterSpec, ns: str
) -> None:
    rel = f"{_root(cluster_spec)}/kubepods/besteffort/pod{uuid.uuid4()}"
    for controller in ("memory", "cpu"):
        (CG / controller / rel).mkdir()
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        (CG / "memory" / rel / "cgroup.procs").write_text(str(sleeper.pid))
        time.sleep(5)  # housekeeping runs every 2 s: a cgroup with a process stays
        assert (CG / "memory" / rel).is_dir()
        assert _read(CG / "memory" / rel / "cgroup.procs") == str(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    wait_for(lambda: _gone(rel), 15, "orphan pod cgroup removed after its process exited")


def test_v2_writer_on_a_real_cgroup2_mount(tmp_path: Path) -> None:
    """On a cgroup2 mount this test makes: the manager builds kubepods / tiers / pod cgroups with
    the v2 writer, writes the files of every controller the hierarchy offers there, moves a
    process in, keeps the busy pod cgroup and removes the idle one. Everything happens under a
    cgroup the test owns; the hierarchy's root is never written."""
    mnt = tmp_path / "cgroup2"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "cgroup2", "none", str(mnt)], check=True)
    base = mnt / f"pykt-v2-{os.getpid()}"
    sleeper: subprocess.Popen[bytes] | None = None
    try:
        base.mkdir()
        offered = set(_read(base / "cgroup.controllers").split())
        print(f"cgroup2 root offers {_read(mnt / 'cgroup.controllers')!r}; ours gets {offered}")
        writer = V2Writer(base)
        manager = CgroupManager(writer, cgroup_root="", pod_pids_limit=64)
        manager.setup(node_resources(2000, 1 << 30))
        g: Json = {
            "metadata": {"uid": str(uuid.uuid4())},
            "spec": {
                "containers": [
                    {"name": "c", "resources": {"limits": {"cpu": "500m", "memory": "32Mi"}}}
                ]
            },
        }
        e: Json = {"metadata": {"uid": str(uuid.uuid4())}, "spec": {"containers": [{"name": "c"}]}}
        assert manager.ensure_pod(g) == f"/kubepods/pod{g['metadata']['uid']}"
        assert manager.ensure_pod(e) == f"/kubepods/besteffort/pod{e['metadata']['uid']}"
        pod = base / "kubepods" / f"pod{g['metadata']['uid']}"
        assert pod.is_dir() and (base / "kubepods" / "burstable").is_dir()
        expected = {"cpu.weight": "20", "cpu.max": "50000 100000", "memory.max": str(32 * MI)}
        expected["pids.max"] = "64"
        for name, value in expected.items():
            if name.split(".")[0] in offered:
                assert _read(pod / name) == value
        assert writer.missing == {"cpu", "memory", "pids"} - offered
        sleeper = subprocess.Popen(["sleep", "600"])
        (pod / "cgroup.procs").write_text(str(sleeper.pid))
        assert (
            f"0::/{base.name}/kubepods/{pod.name}"
            in Path(f"/proc/{sleeper.pid}/cgroup").read_text()
        )
        assert manager.cleanup(set()) == [e["metadata"]["uid"]]
        assert pod.is_dir()
        sleeper.kill()
        sleeper.wait()
        wait_for(lambda: manager.cleanup(set()) == [g["metadata"]["uid"]], 10, "busy pod removed")
        assert manager.pod_cgroups() == {}
    finally:
        if sleeper is not None and sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        for d in [*sorted(base.rglob("*"), key=lambda p: -len(p.parts)), base]:
            if d.is_dir():
                d.rmdir()
        subprocess.run(["umount", str(mnt)], check=True)


def test_kubepods_is_sized_and_allocatable_reported(cluster_spec: ClusterSpec, ns: str) -> None:
    """enforceNodeAllocatable=[pods] with nothing reserved: kubepods gets the node's memory and
    CPUs; status.allocatable is capacity less the default hard eviction threshold (100Mi)."""
    kubepods = f"{_root(cluster_spec)}/kubepods"
    mem_total = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]) * 1024
    limit = int(_read(CG / "memory" / kubepods / "memory.limit_in_bytes"))
    assert limit == mem_total // 4096 * 4096
    assert _read(CG / "cpu" / kubepods / "cpu.shares") == str((os.cpu_count() or 1) * 1024)
    node = api_json(cluster_spec, "/api/v1/nodes/itest-node")["status"]
    capacity_ki = int(node["capacity"]["memory"].removesuffix("Ki"))
    assert node["allocatable"]["memory"] == f"{capacity_ki - 100 * 1024}Ki"
    assert node["allocatable"]["cpu"] == node["capacity"]["cpu"]
    # containerd's CRI config says cgroupfs (SystemdCgroup = false), matching the agent's
    log_text = cluster.agent_daemon(cluster_spec, "itest-node").log_file.read_text()
    assert "container runtime cgroup driver: cgroupfs" in log_text


def _restart_agent(spec: ClusterSpec, extra: str = "", wait: bool = True) -> None:
    process.stop(cluster.agent_daemon(spec, NODE))
    cluster.start_node(spec, NODE, extra=extra, wait=wait)


def test_reserved_cgroups_get_their_limits_and_an_absent_one_is_refused(
    cluster_spec: ClusterSpec, ns: str
) -> None:
    """enforceNodeAllocatable with system-reserved and kube-reserved: the cgroups this test makes
    (below the session's own cgroup root, in every v1 hierarchy) get the reservations as limits;
    kubepods is sized to capacity less both. A kubeReservedCgroup that does not exist stops the
    agent with a message naming it."""
    root = _root(cluster_spec)
    mounts = cghost.detect().v1_mounts
    made = [m / root / name for m in set(mounts.values()) for name in ("sysres", "kubres")]
    for d in made:
        d.mkdir()
    reserved = (
        'systemReserved: {cpu: 100m, memory: 64Mi, pid: "1000"}\n'
        "kubeReserved: {cpu: 200m, memory: 32Mi}\n"
        f"systemReservedCgroup: /{root}/sysres\n"
    )
    enforce = "enforceNodeAllocatable: [pods, system-reserved, kube-reserved]\n"
    try:
        _restart_agent(cluster_spec, reserved + enforce + f"kubeReservedCgroup: /{root}/kubres")
        sysres, kubres = f"{root}/sysres", f"{root}/kubres"
        # the Node was Ready already: wait for the new agent's start-up to write the limits
        wait_for(
            lambda: _read(CG / "memory" / sysres / "memory.limit_in_bytes") == str(64 * MI),
            30,
            "system-reserved memory limit",
        )
        assert _read(CG / "cpu" / sysres / "cpu.shares") == "102"
        assert _read(CG / "pids" / sysres / "pids.max") == "1000"
        assert _read(CG / "memory" / kubres / "memory.limit_in_bytes") == str(32 * MI)
        assert _read(CG / "cpu" / kubres / "cpu.shares") == "204"
        assert _read(CG / "pids" / kubres / "pids.max") == "max"  # no pid reserved: untouched
        mem_total = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]) * 1024
        kubepods = int(_read(CG / "memory" / root / "kubepods" / "memory.limit_in_bytes"))
        assert kubepods == (mem_total - 96 * MI) // 4096 * 4096
        cpus = (os.cpu_count() or 1) * 1000 - 300
        assert _read(CG / "cpu" / root / "kubepods" / "cpu.shares") == str(cpus * 1024 // 1000)
        # a kubeReservedCgroup nobody made: the agent refuses to start, naming it
        _restart_agent(
            cluster_spec, reserved + enforce + f"kubeReservedCgroup: /{root}/absent", wait=False
        )
        agent = cluster.agent_daemon(cluster_spec, NODE)
        wait_for(lambda: agent.pid() is None, 30, "the agent to exit")
        assert (
            'enforceNodeAllocatable "kube-reserved" (kubeReservedCgroup): '
            f'cgroup "/{root}/absent" does not exist'
        ) in agent.tail(), agent.tail()
        assert not (CG / "memory" / root / "absent").exists()
    finally:
        _restart_agent(cluster_spec)
        for d in made:
            d.rmdir()
