"""Periodic dead-container GC on the real runtime, as upstream's policy: a pod whose container
failed twice keeps only its newest dead container (so `logs --previous` and the status's
lastState still work), and the containers and sandbox of a pod the node does not know (deleted
while the agent was away) are removed. GC runs once the pod sources are read at start-up, then
every minute: the test restarts the agent to have a round at once.
"""

from __future__ import annotations

import asyncio
import uuid

from cluster import images, process
from cluster import up as cluster
from cluster.spec import ClusterSpec
from cri import api
from cri.client import RuntimeClient

from .conftest import NODE
from .podutil import container, create_pod, cstatus, pod_body, wait_for, wait_pod

UID = "io.kubernetes.pod.uid"


async def _orphan(spec: ClusterSpec, uid: str) -> tuple[str, str]:
    """A sandbox (host network) and an exited container labelled with a pod UID the apiserver
    never had, as if the pod was deleted while no agent ran; cgroups below the session root."""
    sandbox_config = api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name="gc-orphan", namespace="gone", uid=uid),
        labels={UID: uid, "io.kubernetes.pod.name": "gc-orphan"},
        linux=api.LinuxPodSandboxConfig(
            cgroup_parent=f"{cluster.cgroup_root(spec)}/kubepods/besteffort/pod{uid}",
            security_context=api.LinuxSandboxSecurityContext(
                namespace_options=api.NamespaceOption(network=api.NODE)
            ),
        ),
    )
    async with RuntimeClient(f"unix://{spec.containerd_socket}") as rt:
        sandbox = await rt.run_pod_sandbox(sandbox_config)
        config = api.ContainerConfig(
            metadata=api.ContainerMetadata(name="c", attempt=0),
            image=api.ImageSpec(image=images.BUSYBOX_IMAGE),
            command=["true"],
            labels={UID: uid, "io.kubernetes.container.name": "c"},
        )
        cid = await rt.create_container(sandbox, config, sandbox_config)
        await rt.start_container(cid)
        await rt.stop_pod_sandbox(sandbox)
        return sandbox, cid


async def _runtime(spec: ClusterSpec) -> tuple[list[api.Container], list[api.PodSandbox]]:
    async with RuntimeClient(f"unix://{spec.containerd_socket}") as rt:
        return await rt.list_containers(), await rt.list_pod_sandbox()


async def _remove(spec: ClusterSpec, sandbox: str) -> None:
    async with RuntimeClient(f"unix://{spec.containerd_socket}") as rt:
        if sandbox in {s.id for s in await rt.list_pod_sandbox()}:
            await rt.remove_pod_sandbox(sandbox)


def test_newest_dead_container_kept_and_unknown_pods_collected(
    cluster_spec: ClusterSpec, ns: str
) -> None:
    # attempts 0 and 1 fail, attempt 2 runs on (the count survives restarts in an emptyDir)
    script = (
        "n=$(cat /d/n 2>/dev/null || echo 0); echo $((n + 1)) > /d/n; echo run-$n; "
        '[ "$n" -ge 2 ] && exec sleep 3600; exit 1'
    )
    crashy = container("c", script)
    crashy["volumeMounts"] = [{"name": "d", "mountPath": "/d"}]
    body = pod_body("crashy", [crashy], grace=1)
    body["spec"]["volumes"] = [{"name": "d", "emptyDir": {}}]
    uid = create_pod(cluster_spec, ns, body)["metadata"]["uid"]
    wait_pod(
        cluster_spec,
        ns,
        "crashy",
        lambda p: (
            cstatus(p, "c").get("restartCount", 0) >= 2 and bool(cstatus(p, "c").get("ready"))
        ),
        90,
        "third attempt running",
    )
    orphan_uid = str(uuid.uuid4())
    sandbox, orphan = asyncio.run(_orphan(cluster_spec, orphan_uid))
    try:

        def dead_of_crashy() -> list[api.Container]:
            containers, _ = asyncio.run(_runtime(cluster_spec))
            return [
                c
                for c in containers
                if c.labels.get(UID) == uid and c.state == api.CONTAINER_EXITED
            ]

        assert len(dead_of_crashy()) >= 2
        process.stop(cluster.agent_daemon(cluster_spec, NODE))
        cluster.start_node(cluster_spec, NODE)

        def collected() -> bool:
            containers, sandboxes = asyncio.run(_runtime(cluster_spec))
            ids = {c.id for c in containers} | {s.id for s in sandboxes}
            return orphan not in ids and sandbox not in ids and len(dead_of_crashy()) == 1

        wait_for(collected, 30, "dead containers collected", interval=0.5)
        kept = dead_of_crashy()[0]
        # the newest dead attempt is the one kept, and what users read still works
        assert kept.metadata.attempt == 1, kept
        status, raw = cluster.api(
            cluster_spec, f"/api/v1/namespaces/{ns}/pods/crashy/log?previous=true"
        )
        assert status == 200 and raw.decode() == "run-1\n", (status, raw[:200])
        pod = wait_pod(
            cluster_spec,
            ns,
            "crashy",
            lambda p: "terminated" in cstatus(p, "c").get("lastState", {}),
            15,
            "lastState",
        )
        last = cstatus(pod, "c")["lastState"]["terminated"]
        assert last["exitCode"] == 1 and last["containerID"].endswith(kept.id), last
        assert cstatus(pod, "c")["restartCount"] >= 2
    finally:
        asyncio.run(_remove(cluster_spec, sandbox))
