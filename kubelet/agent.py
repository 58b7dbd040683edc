"""The composition root of `pykubelet run`: builds the managers from the configuration, wires them
together and runs their loops as supervised tasks. No manager's logic lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from cri import api
from cri.client import RuntimeClient, Timeouts
from cri.errors import CRIError
from kube import KUBERNETES_VERSION, __version__, supervise, systemd
from kube import facts as machine
from kube.apiserver import NODES, SECRETS, ApiClient, ApiError
from kube.quantity import parse_quantity
from kubelet import notify
from kubelet.certs.client import ClientSetupError, open_client
from kubelet.cgroups import host as cghost
from kubelet.cgroups import manager as cgmanager
from kubelet.cgroups.planner import node_resources, reserved_resources
from kubelet.config import RunConfig
from kubelet.events import NORMAL, EventRecorder, NodeEvent, node_status_event
from kubelet.eviction import setup as eviction_setup
from kubelet.eviction import signals as eviction_signals
from kubelet.eviction.gc import container_gc_loop
from kubelet.eviction.manager import EvictionManager
from kubelet.eviction.thresholds import DISK_PRESSURE, MEMORY_PRESSURE, PID_PRESSURE
from kubelet.logrotate import LogRotator
from kubelet.logrotate import Policy as LogPolicy
from kubelet.node import allocatable as alloc
from kubelet.node.heartbeat import NodeHeartbeat
from kubelet.node.status import Health, NodeIdentity
from kubelet.pods.admission import NodeResources, Rejection, RuntimeClasses, check_resources
from kubelet.pods.backoff import BackOff
from kubelet.pods.dns import DNSConfigurer
from kubelet.pods.env import EnvironmentManager, ObjectCache, sandbox_ips
from kubelet.pods.etchosts import EtcHosts
from kubelet.pods.executor import PodExecutor
from kubelet.pods.hooks import HooksManager
from kubelet.pods.model import PodUID
from kubelet.pods.source import API_SOURCE, FILE_SOURCE, ObservedSink, PodConfig, PodSource
from kubelet.pods.static import FileSource, MirrorPods
from kubelet.pods.status_manager import StatusManager
from kubelet.pods.workers import PodWorkers
from kubelet.prober import ProbeManager
from kubelet.runtime.metrics import observe_runtime_operation
from kubelet.runtime.state import RuntimeCache
from kubelet.server import KubeletServer
from kubelet.server import build as build_server
from kubelet.server.healthz import HealthzServer
from kubelet.services import ServiceCache
from kubelet.shutdown import planner as shutdown_planner
from kubelet.shutdown import setup as shutdown_setup
from kubelet.shutdown.manager import ShutdownManager
from kubelet.volumes import VolumeManager
from net.daemon import NetworkDaemon
from net.settings import resolve as resolve_network

log = logging.getLogger(__name__)


def detect_node_ips() -> tuple[str, ...]:
    """The node IP when --node-ip is not given: the documented rule of
    kube.facts.choose_node_ip (never just the default-route interface)."""
    return (machine.detect_node_ip(),)


@dataclass
class RuntimeHealth:
    """The runtime's own view of itself, refreshed by a loop (CRI Status)."""

    runtime_ready: bool = False
    runtime_message: str = "container runtime status check may not have completed yet"
    network_ready: bool = False
    network_message: str = "container runtime network status not reported yet"
    checked_at: float = field(default_factory=time.monotonic)

    def apply(self, resp: api.StatusResponse) -> None:
        conds = {c.type: c for c in resp.status.conditions}
        rt, net = conds.get("RuntimeReady"), conds.get("NetworkReady")
        self.runtime_ready = bool(rt and rt.status)
        self.runtime_message = "" if self.runtime_ready else _cond_message(rt, "RuntimeReady")
        self.network_ready = bool(net and net.status)
        self.network_message = "" if self.network_ready else _cond_message(net, "NetworkReady")
        self.checked_at = time.monotonic()


def _cond_message(cond: api.RuntimeCondition | None, name: str) -> str:
    if cond is None:
        return f"{name} condition missing"
    return f"{name}=false reason:{cond.reason} message:{cond.message}"


class Agent:
    """One node agent: the apiserver client, the runtime client and the managers' loops."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.runtime_health = RuntimeHealth()
        self.tasks: set[asyncio.Task[None]] = set()
        self.pleg: RuntimeCache | None = None
        self.workers: PodWorkers | None = None
        self.recorder: EventRecorder | None = None
        self.eviction: EvictionManager | None = None
        self.shutdown: ShutdownManager | None = None
        self.notifier = systemd.Notifier()
        self.kubepods_memory = 0
        """Bytes the kubepods cgroup was sized to (allocatableMemory.available's capacity)."""
        self.sources_synced = asyncio.Event()
        """Every pod source has been read once (upstream's sourcesReady)."""
        kc = config.kubelet
        self.reservations = alloc.Reservations(
            kc.kube_reserved, kc.system_reserved, kc.eviction_hard
        )

    def health(self) -> Health:
        rh, em = self.runtime_health, self.eviction
        return Health(
            runtime_ready=rh.runtime_ready,
            runtime_message=rh.runtime_message,
            network_ready=rh.network_ready,
            network_message=rh.network_message,
            memory_pressure=em is not None and em.pressure(MEMORY_PRESSURE),
            disk_pressure=em is not None and em.pressure(DISK_PRESSURE),
            pid_pressure=em is not None and em.pressure(PID_PRESSURE),
            shutting_down=self.shutdown is not None and self.shutdown.shutting_down,
        )

    def _node_event(self, node: str, reason: str) -> None:
        """A Node status event (pressure transitions), once the event recorder exists."""
        if self.recorder is not None:
            self.recorder.record_node(node_status_event(node, reason))

    async def _runtime_status_loop(self, runtime: RuntimeClient) -> None:
        while True:
            try:
                self.runtime_health.apply(await runtime.status(deadline=5))
            except CRIError as e:
                self.runtime_health.runtime_ready = False
                self.runtime_health.runtime_message = str(e)
            await asyncio.sleep(5)

    async def run(self) -> None:
        cfg, kc = self.config, self.config.kubelet
        stop = asyncio.Event()
        fatal: list[str] = []

        def on_expired(why: str) -> None:  # upstream's kubelet exits; its supervisor restarts it
            log.error("exiting: %s", why)
            fatal.append(why)
            stop.set()

        try:
            client, client_certs = await open_client(cfg, on_expired=on_expired)
        except ClientSetupError as e:
            raise SystemExit(f"pykubelet run: {e}") from e
        if client_certs is not None:
            supervise.spawn(self.tasks, "client-certificate", client_certs.run)
        # runtimeRequestTimeout bounds every CRI call but the long-running ones, as upstream
        # (2m by default: a slow machine's RunPodSandbox can take tens of seconds).
        timeouts = Timeouts(default=kc.runtime_request_timeout.total_seconds())
        runtime = RuntimeClient(
            kc.container_runtime_endpoint, timeouts=timeouts, observe=observe_runtime_operation
        )
        self.notifier.status("Waiting for the container runtime")
        version = await self._runtime_version(runtime)
        ident = NodeIdentity(
            name=cfg.node_name,
            internal_ips=cfg.node_ips or detect_node_ips(),
            kubelet_version=f"{KUBERNETES_VERSION}+pykubelet.{__version__}",
            runtime_version=version,
            port=kc.port,
            labels=dict(kc.node_labels),
            taints=tuple(
                {"key": t.key, "value": t.value, "effect": t.effect}
                for t in kc.register_with_taints
            ),
            pod_cidr=kc.pod_cidr or None,
        )
        cfg.root_dir.mkdir(parents=True, exist_ok=True)
        node = NodeHeartbeat(
            client=client,
            ident=ident,
            facts=lambda: machine.gather(cfg.root_dir),
            health=self.health,
            max_pods=kc.max_pods,
            status_every=kc.node_status_update_frequency.total_seconds(),
            report_every=kc.node_status_report_frequency.total_seconds(),
            lease_duration=kc.node_lease_duration_seconds,
            allocatable=lambda facts: alloc.node_allocatable(facts, kc.max_pods, self.reservations),
            record=lambda reason: self._node_event(ident.name, reason),
        )
        try:
            self.runtime_health.apply(await runtime.status(deadline=5))
        except CRIError as e:
            log.warning("first runtime status check failed: %s", e)
        cgroups, cg_host = self._start_cgroups(await self._runtime_cgroup_driver(runtime))
        self._start_pods(client, runtime, ident, cgroups)
        await self._start_eviction(runtime, cgroups, cg_host)
        server = self._start_server(client, runtime, ident)
        healthz = self._start_healthz()
        self._start_log_rotation(runtime)
        supervise.spawn(self.tasks, "runtime-status", lambda: self._runtime_status_loop(runtime))
        supervise.spawn(self.tasks, "node-status", node.status_loop)
        supervise.spawn(self.tasks, "node-lease", node.lease_loop)
        self._start_network(client, node)
        self._start_shutdown_manager(node)
        listening = [s.listening for s in (server, healthz) if s is not None]
        notify.start(
            self.notifier,
            self.tasks,
            node=ident.name,
            listening=listening,
            registered=node.registered,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("pykubelet %s running as node %s", __version__, ident.name)
        try:
            await stop.wait()
        finally:
            self.notifier.stopping("Stopping")
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await runtime.close()
            await client.close()
        if fatal:
            raise SystemExit(f"pykubelet run: {fatal[0]}")

    async def _runtime_cgroup_driver(self, runtime: RuntimeClient) -> str | None:
        """The runtime's cgroup driver as its verbose Status reports it (containerd), if any."""
        try:
            info = (await runtime.status(verbose=True, deadline=5)).info
        except CRIError as e:
            log.warning("the runtime's cgroup driver is unknown: %s", e)
            return None
        driver = cghost.runtime_driver(info.get("config", ""))
        log.info("container runtime cgroup driver: %s", driver or "not reported")
        return driver

    def _start_cgroups(
        self, runtime_driver: str | None
    ) -> tuple[cgmanager.CgroupManager, cghost.CgroupHost]:
        """Detect v1/v2 once, check the driver against the runtime's, create kubepods (sized to
        allocatable when enforced) and the QoS tiers."""
        kc = self.config.kubelet
        try:
            cghost.check_runtime_driver(kc.cgroup_driver, runtime_driver)
            found = cghost.detect()
            if kc.fail_cgroup_v1 and found.version == cghost.V1:
                raise SystemExit(
                    "pykubelet run: failCgroupV1 is set and this host uses cgroup v1: "
                    "set failCgroupV1: false or move the host to cgroup v2"
                )
            cgroups = cgmanager.build(
                found,
                cgroup_root=kc.cgroup_root,
                cgroups_per_qos=kc.cgroups_per_qos,
                driver=kc.cgroup_driver,
                pod_pids_limit=kc.pod_pids_limit,
            )
            enforce = kc.cgroups_per_qos and "pods" in kc.enforce_node_allocatable
            size = alloc.kubepods_size(
                machine.gather(self.config.root_dir), self.reservations, enforce
            )
            cgroups.setup(node_resources(*size))
            self.kubepods_memory = size[1]
            for rc in alloc.reserved_cgroups(
                kc.enforce_node_allocatable,
                self.reservations,
                system_cgroup=kc.system_reserved_cgroup,
                kube_cgroup=kc.kube_reserved_cgroup,
            ):
                cgroups.enforce_existing(
                    rc.cgroup,
                    reserved_resources(rc.reserved, rc.compressible_only),
                    what=f'enforceNodeAllocatable "{rc.option}" ({rc.field})',
                )
        except (cghost.CgroupSetupError, OSError) as e:
            raise SystemExit(f"pykubelet run: setting up pod cgroups failed: {e}") from e
        return cgroups, found

    async def _start_eviction(
        self, runtime: RuntimeClient, cgroups: cgmanager.CgroupManager, found: cghost.CgroupHost
    ) -> None:
        """The eviction manager (node conditions, node-level reclaim, evictions), image GC."""
        workers, kc = self.workers, self.config.kubelet
        assert workers is not None and self.recorder is not None
        imagefs = await eviction_setup.image_fs(runtime, self.config.root_dir)
        manager = eviction_setup.build(
            kc,
            host=found,
            cgroups=cgroups,
            runtime=runtime,
            root_dir=self.config.root_dir,
            imagefs=imagefs,
            active_pods=workers.active_pods,
            evict=lambda pod, message, grace: workers.evict(
                PodUID(pod["metadata"]["uid"]), message, grace
            ),
            record=self.recorder.record,
            kubepods_memory=self.kubepods_memory,
            sources_ready=self.sources_synced.is_set,
        )
        self.eviction = manager
        if manager.image_gc is not None:
            with contextlib.suppress(CRIError):
                await manager.image_gc.unused()  # images present now are first seen at start-up
        supervise.spawn(self.tasks, "eviction", manager.run)
        if manager.image_gc is None or kc.image_gc_high_threshold_percent >= 100:
            return  # periodic image GC is off (imageGCHighThresholdPercent: 100)
        supervise.spawn(
            self.tasks,
            "image-gc",
            lambda: manager.image_gc_loop(
                kc.image_gc_high_threshold_percent,
                kc.image_gc_low_threshold_percent,
                lambda: eviction_signals.filesystem(imagefs)[0],
            ),
        )

    def _admission(
        self, pod: dict[str, object], others: list[dict[str, object]]
    ) -> Rejection | None:
        """Node pressure (eviction manager), then the resource fit against allocatable."""
        for admit in (self.shutdown, self.eviction):
            rejection = admit.admit(pod) if admit is not None else None
            if rejection is not None:
                return rejection
        kc = self.config.kubelet
        amounts = alloc.allocatable_amounts(
            machine.gather(self.config.root_dir), kc.max_pods, self.reservations
        )
        node = NodeResources(amounts.millicpu, amounts.memory, amounts.pods)
        return check_resources(pod, others, node)

    def _start_pods(
        self,
        client: ApiClient,
        runtime: RuntimeClient,
        ident: NodeIdentity,
        cgroups: cgmanager.CgroupManager,
    ) -> None:
        """Wire the pod pipeline: pod source -> workers -> executor/CRI; PLEG; status writer."""
        recorder = EventRecorder(client, ident.name)
        self.recorder = recorder
        status = StatusManager(client)
        workers: PodWorkers | None = None

        def on_change(uid: PodUID) -> None:
            if workers is not None:
                workers.wake(uid)

        cache = RuntimeCache(runtime, on_change=on_change)
        self.pleg = cache
        backoff = BackOff()
        volumes, env, hooks = self._container_managers(client, runtime, ident, recorder)
        pull_secrets = ObjectCache(client)
        executor = PodExecutor(
            runtime,
            recorder,
            log_root=self.config.kubelet.pod_logs_dir,
            pods_dir=self.config.root_dir / "pods",
            backoff=backoff,
            volumes=volumes,
            env=env,
            hooks=hooks,
            dns=DNSConfigurer(
                resolv_conf=self.config.kubelet.resolv_conf,
                cluster_dns=self.config.kubelet.cluster_dns,
                cluster_domain=self.config.kubelet.cluster_domain,
                node_ips=lambda: ident.internal_ips,
            ),
            etc_hosts=EtcHosts(runtime, self.config.root_dir / "pods"),
            runtime_classes=RuntimeClasses(client).handler,
            cgroup_parent=lambda pod, create: (
                cgroups.ensure_pod(pod) if create else cgroups.cgroup_parent(pod)
            ),
            secrets=lambda namespace, name: pull_secrets.get(SECRETS, namespace, name),
        )
        probes = ProbeManager(
            runtime=runtime, recorder=recorder, wake=on_change, rand=random.random
        )
        workers = PodWorkers(
            client=client,
            cache=cache,
            executor=executor,
            events=executor,
            images=executor,
            volumes=volumes,
            teardown=executor,
            status=status,
            backoff=backoff,
            host_ips=lambda: ident.internal_ips,
            probes=probes,
            allowed_unsafe_sysctls=self.config.kubelet.allowed_unsafe_sysctls,
            admission=self._admission,
        )
        pod_config = PodConfig(ObservedSink(workers, volumes.observe))
        mirrors = self._start_static_pods(client, ident, status, pod_config, workers)
        source = PodSource(client, ident.name, pod_config.source(API_SOURCE), mirrors)
        supervise.spawn(self.tasks, "events", recorder.run)
        supervise.spawn(self.tasks, "pod-status", status.run)
        supervise.spawn(self.tasks, "pleg", cache.relist_loop)
        supervise.spawn(self.tasks, "pod-source", source.run)
        known = workers.known

        async def pods_known() -> None:
            """The node's API pods are listed and the runtime is freshly read."""
            await source.synced.wait()
            await cache.relist()
            self.sources_synced.set()

        supervise.spawn(
            self.tasks,
            "orphaned-pods",
            lambda: volumes.orphan_loop(
                pods_known, lambda uid: uid in known() or uid in cache.uids()
            ),
        )
        supervise.spawn(
            self.tasks,
            "container-gc",
            lambda: container_gc_loop(runtime, keep=workers.keeps_content, ready=pods_known),
        )
        supervise.spawn(
            self.tasks,
            "pod-cgroups",
            lambda: cgroups.housekeeping(workers.pods, ready=source.synced.wait),
        )
        self.workers = workers

    def _container_managers(
        self,
        client: ApiClient,
        runtime: RuntimeClient,
        ident: NodeIdentity,
        recorder: EventRecorder,
    ) -> tuple[VolumeManager, EnvironmentManager, HooksManager]:
        """What a container needs besides its image: volumes, environment, lifecycle hooks."""
        volumes = VolumeManager(
            client, self.config.root_dir, allocatable=lambda: node_allocatable()
        )
        supervise.spawn(self.tasks, "volumes-refresh", volumes.refresh_loop)
        services = ServiceCache(client)
        supervise.spawn(self.tasks, "services", services.run)

        async def pod_ips(uid: str) -> list[str]:
            return await sandbox_ips(runtime, uid)

        def node_allocatable() -> dict[str, str]:
            facts = machine.gather(self.config.root_dir)
            return alloc.node_allocatable(facts, self.config.kubelet.max_pods, self.reservations)

        env = EnvironmentManager(
            ObjectCache(client),
            services=services,
            host_ips=lambda: ident.internal_ips,
            allocatable=node_allocatable,
            pod_ips=pod_ips,
            record=recorder.record,
        )
        hooks = HooksManager(runtime, pod_ips=pod_ips, record=recorder.record)
        return volumes, env, hooks

    def _start_static_pods(
        self,
        client: ApiClient,
        ident: NodeIdentity,
        status: StatusManager,
        pod_config: PodConfig,
        workers: PodWorkers,
    ) -> MirrorPods:
        """Static pods from staticPodPath (if set) into the pod stream, and their mirror pods."""
        kc = self.config.kubelet
        mirrors = MirrorPods(
            client,
            ident.name,
            status,
            pod_config.source(FILE_SOURCE),
            static_enabled=bool(kc.static_pod_path),
        )
        supervise.spawn(self.tasks, "mirror-pods", mirrors.run)
        if kc.static_pod_path:
            files = FileSource(
                Path(kc.static_pod_path),
                ident.name,
                mirrors,
                check_every=kc.file_check_frequency.total_seconds(),
                active=lambda uid: uid in workers.known(),
                on_ready=mirrors.files_ready,
            )
            supervise.spawn(self.tasks, "static-pods", files.run)
        return mirrors

    def _start_network(self, client: ApiClient, node: NodeHeartbeat) -> None:
        """pykubelet's own pod network (net/): the CNI plugin socket, then the conflist once the
        Node has a podCIDR. Off unless a CNI conf dir is set (PYKUBELET_CNI_CONF_DIR)."""
        settings = resolve_network(self.config.root_dir)
        if settings is None:
            log.info("no CNI conf dir configured; pod networking is left to the runtime")
            return

        async def pod_cidr() -> str | None:
            """The heartbeat's podCIDR, else the Node's (node IPAM sets it after registration)."""
            if node.pod_cidr or not node.registered.is_set():
                return node.pod_cidr
            try:
                found = await client.get(NODES, node.ident.name)
            except ApiError as e:
                log.warning("reading the Node's podCIDR failed: %s", e)
                return None
            return str(found.get("spec", {}).get("podCIDR") or "") or None

        daemon = NetworkDaemon(settings)
        supervise.spawn(self.tasks, "network", lambda: daemon.run(pod_cidr))

    def _start_shutdown_manager(self, node: NodeHeartbeat) -> None:
        """Graceful node shutdown (logind's inhibitor) when shutdownGracePeriod is set."""
        assert self.workers is not None and self.recorder is not None
        recorder, name = self.recorder, node.ident.name
        self.shutdown = shutdown_setup.build(
            self.config.kubelet,
            workers=self.workers,
            sync_node_status=node.sync_status,
            record=lambda message: recorder.record_node(
                NodeEvent(name, NORMAL, shutdown_planner.EVENT_REASON, message)
            ),
            root_dir=self.config.root_dir,
        )
        if self.shutdown is not None:
            supervise.spawn(self.tasks, "node-shutdown", self.shutdown.run)

    def _start_server(
        self, client: ApiClient, runtime: RuntimeClient, ident: NodeIdentity
    ) -> KubeletServer:
        """The node's HTTPS API (:10250): logs, exec/attach/port-forward, metrics, stats."""

        async def pods() -> list[dict[str, object]]:
            return list(self.workers.pods()) if self.workers is not None else []

        server = build_server(
            self.config,
            node=ident.name,
            node_ips=ident.internal_ips,
            client=client,
            runtime=runtime,
            health=self.api_health,
            pods=pods,
        )
        supervise.spawn(self.tasks, "node-api", server.run)
        if server.cert_manager is not None:
            supervise.spawn(self.tasks, "serving-certificate", server.cert_manager.run)
        return server

    def api_health(self) -> tuple[bool, str]:
        """/healthz on the node API and on healthzPort: every loop runs, the runtime is ready."""
        dead = sorted(t.get_name() for t in self.tasks if t.done())
        if dead:
            return False, f"loops not running: {', '.join(dead)}"
        rh = self.runtime_health
        return rh.runtime_ready, rh.runtime_message

    def _start_healthz(self) -> HealthzServer | None:
        """The plain-HTTP /healthz on healthzBindAddress:healthzPort (kubeadm polls it; 0: off)."""
        kc = self.config.kubelet
        if not kc.healthz_port:
            return None
        server = HealthzServer(
            self.api_health, address=kc.healthz_bind_address, port=kc.healthz_port
        )
        supervise.spawn(self.tasks, "healthz", server.run)
        return server

    def _start_log_rotation(self, runtime: RuntimeClient) -> None:
        """Container log rotation (containerLogMaxSize / containerLogMaxFiles)."""
        kc = self.config.kubelet
        policy = LogPolicy(
            max_bytes=int(parse_quantity(kc.container_log_max_size or "0")),
            max_files=kc.container_log_max_files,
        )
        rotator = LogRotator(runtime, policy)
        supervise.spawn(self.tasks, "log-rotation", rotator.run)

    async def _runtime_version(self, runtime: RuntimeClient) -> str:
        """containerd://1.6.20 style, waiting for the runtime to answer first."""
        while True:
            try:
                v = await runtime.version(deadline=5)
                return f"{v.runtime_name}://{v.runtime_version}"
            except CRIError as e:
                log.warning("container runtime not answering yet: %s", e)
                await asyncio.sleep(1)
