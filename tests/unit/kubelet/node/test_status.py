"""Node status as pure data: upstream condition reasons, transition times, capacity, write rule."""

from __future__ import annotations

from kube.facts import MachineFacts, go_arch, mem_total_bytes, os_image
from kubelet.node.status import (
    Health,
    NodeIdentity,
    allocatable,
    capacity,
    conditions,
    node_status,
    registration,
    write_due,
)

FACTS = MachineFacts(
    machine_id="m",
    system_uuid="u",
    boot_id="b",
    kernel_version="6.1",
    os_image="Debian",
    architecture="amd64",
    cpus=2,
    memory_bytes=4 * 1024**3,
    ephemeral_storage_bytes=10 * 1024**3,
    hugepages={"2Mi": 0},
)
IDENT = NodeIdentity(
    name="n1",
    internal_ips=("10.1.0.5",),
    kubelet_version="v1.36.3",
    runtime_version="containerd://1.6.20",
    labels={"tier": "a"},
    taints=({"key": "k", "value": "v", "effect": "NoSchedule"},),
)


def _by_type(conds: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {c["type"]: c for c in conds}


def test_healthy_node_conditions_use_upstream_reasons() -> None:
    c = _by_type(conditions(Health(), [], "T1"))
    assert c["Ready"]["status"] == "True" and c["Ready"]["reason"] == "KubeletReady"
    assert c["MemoryPressure"]["reason"] == "KubeletHasSufficientMemory"
    assert c["DiskPressure"]["reason"] == "KubeletHasNoDiskPressure"
    assert c["PIDPressure"]["reason"] == "KubeletHasSufficientPID"
    assert all(x["status"] == "False" for t, x in c.items() if t != "Ready")


def test_not_ready_names_every_cause() -> None:
    h = Health(
        runtime_ready=False,
        runtime_message="connection refused",
        network_ready=False,
        network_message="no pod CIDR yet",
    )
    ready = _by_type(conditions(h, [], "T1"))["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "KubeletNotReady"
    assert "container runtime is down: connection refused" in ready["message"]
    assert "network not ready: no pod CIDR yet" in ready["message"]


def test_a_shutting_down_node_is_not_ready() -> None:
    ready = _by_type(conditions(Health(shutting_down=True), [], "T1"))["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "KubeletNotReady",
        "node is shutting down",
    )


def test_transition_time_kept_while_status_holds() -> None:
    first = conditions(Health(), [], "T1")
    second = _by_type(conditions(Health(), first, "T2"))
    assert second["Ready"]["lastTransitionTime"] == "T1"
    assert second["Ready"]["lastHeartbeatTime"] == "T2"
    third = _by_type(conditions(Health(pid_pressure=True), first, "T3"))
    assert third["PIDPressure"]["lastTransitionTime"] == "T3"
    assert third["Ready"]["lastTransitionTime"] == "T1"


def test_registration_labels_and_taints() -> None:
    node = registration(IDENT, FACTS)
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "n1"
    assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"] == "amd64"
    assert labels["tier"] == "a"
    assert node["spec"]["taints"] == [{"key": "k", "value": "v", "effect": "NoSchedule"}]


def test_capacity_and_allocatable() -> None:
    cap = capacity(FACTS, 110)
    assert cap["cpu"] == "2" and cap["pods"] == "110"
    assert cap["memory"] == f"{4 * 1024**2}Ki"
    alloc = allocatable(FACTS, 110, reserved_memory_bytes=100 * 1024**2, reserved_millicpu=100)
    assert alloc["cpu"] == "1900m"
    assert alloc["memory"] == f"{4 * 1024**2 - 100 * 1024}Ki"


def test_status_shape_and_write_rule() -> None:
    s1 = node_status(IDENT, FACTS, Health(), previous={}, now="T1", max_pods=110)
    assert s1["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert {"type": "InternalIP", "address": "10.1.0.5"} in s1["addresses"]
    assert s1["nodeInfo"]["containerRuntimeVersion"] == "containerd://1.6.20"
    s2 = node_status(IDENT, FACTS, Health(), previous=s1, now="T2", max_pods=110)
    assert not write_due(s1, s2, seconds_since_write=10, report_every=300)
    assert write_due(s1, s2, seconds_since_write=300, report_every=300)
    s3 = node_status(IDENT, FACTS, Health(disk_pressure=True), previous=s1, now="T3", max_pods=110)
    assert write_due(s1, s3, seconds_since_write=10, report_every=300)


def test_fact_parsers() -> None:
    assert os_image('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n') == (
        "Debian GNU/Linux 12 (bookworm)"
    )
    assert mem_total_bytes("MemTotal:       1024 kB\nMemFree: 1 kB\n") == 1024 * 1024
    assert go_arch("x86_64") == "amd64" and go_arch("aarch64") == "arm64"
