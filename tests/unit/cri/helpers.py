"""Builders of plain CRI messages for the cri/ unit tests (no Kubernetes types involved).
Test support only; it must not start servers or talk to a runtime.
"""

from __future__ import annotations

from cri import api

IMAGE = "busybox:1.36"


def sandbox_config(
    name: str = "web", *, namespace: str = "default", uid: str = "uid-1", attempt: int = 0
) -> api.PodSandboxConfig:
    """A minimal sandbox config as a kubelet would send it."""
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=name, namespace=namespace, uid=uid, attempt=attempt),
        hostname=name,
        log_directory=f"/var/log/pods/{namespace}_{name}_{uid}",
        dns_config=api.DNSConfig(servers=["10.96.0.10"], searches=["svc.cluster.local"]),
        port_mappings=[api.PortMapping(protocol=api.TCP, container_port=80, host_port=8080)],
        labels={"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace},
        linux=api.LinuxPodSandboxConfig(
            cgroup_parent=f"/kubepods/pod{uid}",
            security_context=api.LinuxSandboxSecurityContext(
                namespace_options=api.NamespaceOption(network=api.POD, pid=api.CONTAINER)
            ),
            sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
        ),
    )


def container_config(
    name: str = "app", *, image: str = IMAGE, attempt: int = 0, labels: dict[str, str] | None = None
) -> api.ContainerConfig:
    """A minimal container config as a kubelet would send it."""
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name=name, attempt=attempt),
        image=api.ImageSpec(image=image),
        command=["sh", "-c"],
        args=["sleep 3600"],
        envs=[api.KeyValue(key="MODE", value=b"test")],
        mounts=[api.Mount(container_path="/data", host_path="/tmp/data", readonly=True)],
        labels={"io.kubernetes.container.name": name, **(labels or {})},
        log_path=f"{name}/{attempt}.log",
        linux=api.LinuxContainerConfig(
            resources=api.LinuxContainerResources(cpu_shares=256, memory_limit_in_bytes=64 << 20)
        ),
    )
