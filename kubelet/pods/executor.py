"""Carries out one PodActions through CRI: kills in stages, sandbox, image pulls, create and start,
with the events users look for. Decides nothing itself; failures become waiting reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from cri import api
from cri.client import RuntimeClient
from cri.errors import CRIError, NotFound
from kube.apiserver import ApiError
from kube.facts import mem_total_bytes
from kube.jsontypes import JsonMap
from kubelet import events as ev
from kubelet.pods import ephemeral
from kubelet.pods.admission import RuntimeClassError, needs_image_user, verify_run_as_non_root
from kubelet.pods.backoff import BackOff
from kubelet.pods.dns import DNSConfigurer
from kubelet.pods.etchosts import EtcHosts
from kubelet.pods.model import (
    Container,
    Pod,
    PodSpecError,
    PodUID,
    PullPolicy,
    RuntimePod,
    SandboxID,
    Waiting,
)
from kubelet.pods.plan import KILL_LIVENESS, KILL_STARTUP, PodActions
from kubelet.pods.seams import (
    ContainerConfigError,
    Environment,
    Hooks,
    NoHooks,
    NoVolumes,
    PlainEnvironment,
    Volumes,
    VolumeSetupError,
)
from kubelet.runtime import pullsecrets
from kubelet.runtime.criconfig import container_config, pod_log_directory
from kubelet.runtime.criconfig import sandbox_config as build_sandbox_config

log = logging.getLogger(__name__)

ERR_IMAGE_PULL, IMAGE_PULL_BACK_OFF = "ErrImagePull", "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
CREATE_CONFIG_ERROR, CREATE_ERROR = "CreateContainerConfigError", "CreateContainerError"
RUN_ERROR = "RunContainerError"
POST_START_ERROR = "PostStartHookError"
CONTAINER_CREATING = "ContainerCreating"
FAILED_MOUNT, FAILED_POST_START = "FailedMount", "FailedPostStartHook"
MIN_KILL_GRACE = 2

RuntimeClassLookup = Callable[[str], Awaitable[str]]
"""RuntimeClass name -> CRI handler; raises RuntimeClassError (admission.RuntimeClasses)."""
SecretLookup = Callable[[str, str], Awaitable[JsonMap | None]]
"""(namespace, name) -> the Secret, None when it does not exist; raises when it cannot be read."""
PodCgroupParent = Callable[[JsonMap, bool], str]
"""(pod, create) -> the pod cgroup's name for the sandbox's cgroup parent; with create=True the
cgroup is made or updated first (OSError when that fails). cgroups.manager.CgroupManager."""


def _node_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            return mem_total_bytes(f.read())
    except (OSError, ValueError):
        return None


@dataclass
class Outcome:
    """What one execution left behind for the status: waiting reasons by container name."""

    waiting: dict[str, Waiting] = field(default_factory=dict)
    sandbox_error: str = ""


def _container_spec(pod_json: JsonMap, name: str) -> tuple[JsonMap, bool]:
    spec = pod_json.get("spec", {})
    for c in spec.get("initContainers") or []:
        if c.get("name") == name:
            return c, True
    for c in (*(spec.get("containers") or []), *(spec.get("ephemeralContainers") or [])):
        if c.get("name") == name:
            return c, False
    raise KeyError(name)


class PodExecutor:
    """Executes plans for every pod of the node; owns the image pull back-off."""

    def __init__(
        self,
        runtime: RuntimeClient,
        recorder: ev.EventRecorder,
        *,
        log_root: str,
        pods_dir: Path,
        backoff: BackOff,
        volumes: Volumes | None = None,
        env: Environment | None = None,
        hooks: Hooks | None = None,
        runtime_classes: RuntimeClassLookup | None = None,
        memory_capacity: int | None = None,
        dns: DNSConfigurer | None = None,
        etc_hosts: EtcHosts | None = None,
        cgroup_parent: PodCgroupParent | None = None,
        secrets: SecretLookup | None = None,
    ) -> None:
        self.rt = runtime
        self.pods_dir = pods_dir
        self.volumes: Volumes = volumes or NoVolumes()
        self.env: Environment = env or PlainEnvironment()
        self.hooks: Hooks = hooks or NoHooks()
        self.recorder = recorder
        self.log_root = log_root
        self.backoff = backoff
        self.pull_backoff = BackOff()
        self._pulls: dict[str, asyncio.Lock] = {}
        self.runtime_classes: RuntimeClassLookup | None = runtime_classes
        """Without it a pod naming a RuntimeClass gets the default handler."""
        self.memory_capacity = memory_capacity if memory_capacity is not None else _node_memory()
        """The node's memory in bytes, for the Burstable oom_score_adj."""
        self.dns = dns
        """Sandbox resolv.conf and hostname; without it the runtime's defaults (no events)."""
        self.etc_hosts = etc_hosts
        """The managed /etc/hosts mount; without it containers keep the image's."""
        self.cgroup_parent = cgroup_parent
        """The pod cgroup as sandbox cgroup parent; without it the runtime's default."""
        self.secrets = secrets
        """Reads imagePullSecrets; without it every pull is anonymous."""

    def _event(self, pod: Pod, type_: str, reason: str, message: str, field_path: str = "") -> None:
        self.recorder.record(
            ev.PodEvent(pod.namespace, pod.name, pod.uid, type_, reason, message, field_path)
        )

    def pod_event(self, pod: Pod, type_: str, reason: str, message: str) -> None:
        self._event(pod, type_, reason, message)

    def container_event(self, pod: Pod, name: str, type_: str, reason: str, message: str) -> None:
        self._event(pod, type_, reason, message, self._field_path(pod, name))

    def pull_backoff_left(self, uid: PodUID, image: str, now: float) -> float:
        """Seconds until this pod may pull the image again (0: it may now)."""
        return self.pull_backoff.is_in_backoff((uid, image), now)

    async def remove_pod(self, uid: PodUID, runtime: RuntimePod) -> None:
        """Nothing of the pod runs: remove its sandboxes, tear down its volumes, then remove
        its directory (only after the unmounts, so no volume content goes with it)."""
        for sandbox in runtime.sandboxes:
            with contextlib.suppress(CRIError):
                await self.rt.remove_pod_sandbox(sandbox.id)
        await self.volumes.teardown(uid)
        shutil.rmtree(self.pods_dir / uid, ignore_errors=True)

    @staticmethod
    def _field_path(pod: Pod, name: str) -> str:
        """spec.initContainers{n}, spec.ephemeralContainers{n} or spec.containers{n}."""
        if any(c.name == name for c in pod.ephemeral_containers):
            return ephemeral.field_path(name)
        init = any(c.name == name for c in pod.init_containers)
        return ev.container_field_path(name, init=init)

    def sandbox_config(
        self, pod_json: JsonMap, pod: Pod, attempt: int, *, creating: bool = False
    ) -> api.PodSandboxConfig:
        """The sandbox config; `creating` when the sandbox is being created: then DNS warnings
        (MissingClusterDNS, DNSConfigForming) become events and DNS errors are raised."""
        dns = None
        if self.dns is not None:
            try:
                result = self.dns.pod_dns(pod)
            except PodSpecError as e:
                if creating:
                    raise
                log.warning("%s (sandbox config for image pulls and containers)", e)
            else:
                dns = result.settings
                for w in result.warnings:
                    if creating:
                        self._event(pod, ev.WARNING, w.reason, w.message)
        parent = "" if self.cgroup_parent is None else self.cgroup_parent(pod_json, creating)
        config = build_sandbox_config(
            pod_json,
            attempt=attempt,
            log_dir=pod_log_directory(pod_json, self.log_root),
            dns=dns,
            cgroup_parent=parent,
        )
        if self.dns is not None and config.hostname:  # not for hostNetwork pods
            try:
                config.hostname = self.dns.hostname(pod).kernel
            except PodSpecError:
                if creating:
                    raise
        return config

    async def kill(self, pod: Pod, actions: PodActions) -> None:
        grace = max(MIN_KILL_GRACE, actions.grace_period_seconds)
        for stage in actions.kill_stages:
            await asyncio.gather(*(self._kill_one(pod, cid, actions, grace) for cid in stage))
        for sid in actions.sandbox_ids_to_kill:
            with contextlib.suppress(NotFound):
                await self.rt.stop_pod_sandbox(sid)

    async def _kill_one(self, pod: Pod, cid: str, actions: PodActions, grace: int) -> None:
        info = actions.containers_to_kill.get(cid)  # type: ignore[call-overload]
        if info is not None and info.grace_seconds is not None:
            grace = max(MIN_KILL_GRACE, info.grace_seconds)  # a probe's own grace period
        if info is not None:
            self._event(
                pod,
                ev.NORMAL,
                ev.KILLING,
                info.message
                if info.reason in (KILL_LIVENESS, KILL_STARTUP) and info.message
                else f"Stopping container {info.name}",
                self._field_path(pod, info.name),
            )
            container = pod.container(info.name)
            if container is not None:  # still in the spec: its preStop hook runs first
                started = time.monotonic()
                await self.hooks.pre_stop(pod, container, cid, grace)
                grace = max(MIN_KILL_GRACE, grace - int(time.monotonic() - started))
        with contextlib.suppress(NotFound):
            await self.rt.stop_container(cid, grace_seconds=grace)

    async def execute(
        self, pod_json: JsonMap, pod: Pod, actions: PodActions, runtime: RuntimePod
    ) -> Outcome:
        out = Outcome()
        if actions.kill_stages or actions.sandbox_ids_to_kill:
            await self.kill(pod, actions)
        sandbox = runtime.latest_sandbox()
        attempt = sandbox.attempt if sandbox else 0
        sandbox_id: SandboxID | None = sandbox.id if sandbox else None
        if actions.create_sandbox:
            attempt = actions.attempt
            if sandbox is not None:
                self._event(
                    pod,
                    ev.NORMAL,
                    ev.SANDBOX_CHANGED,
                    "Pod sandbox changed, it will be killed and re-created.",
                )
            try:
                handler = await self._runtime_handler(pod)
                sandbox_id = SandboxID(
                    await self.rt.run_pod_sandbox(
                        self.sandbox_config(pod_json, pod, attempt, creating=True),
                        runtime_handler=handler,
                    )
                )
            except (CRIError, PodSpecError, RuntimeClassError, OSError) as e:
                out.sandbox_error = str(e)
                self._event(
                    pod, ev.WARNING, ev.FAILED_CREATE_SANDBOX, f"Failed to create pod sandbox: {e}"
                )
                return out
        if sandbox_id is None:
            return out
        starts = [*actions.init_containers_to_start]
        if actions.next_init_container_to_start:
            starts.append(actions.next_init_container_to_start)
        starts += actions.ephemeral_containers_to_start
        starts += actions.containers_to_start
        sb_config = self.sandbox_config(pod_json, pod, attempt)
        if starts:
            try:
                await self.volumes.setup(pod_json)
            except VolumeSetupError as e:
                self._event(pod, ev.WARNING, FAILED_MOUNT, str(e))
                out.waiting = {name: Waiting(CONTAINER_CREATING, str(e)) for name in starts}
                return out
        for name in starts:
            waiting = await self._start(pod_json, pod, runtime, sandbox_id, sb_config, name)
            if waiting is not None:
                out.waiting[name] = waiting
            if waiting is None or waiting.reason == POST_START_ERROR:
                # it started (and a failed postStart killed it): a restart for the back-off
                actions.record_backoff(name, self.backoff)
        return out

    async def _runtime_handler(self, pod: Pod) -> str:
        """The CRI handler of spec.runtimeClassName ('' without one); raises RuntimeClassError."""
        if not pod.runtime_class_name or self.runtime_classes is None:
            return ""
        return await self.runtime_classes(pod.runtime_class_name)

    async def _check_non_root(
        self, pod: Pod, container: Container, image: str, fpath: str
    ) -> Waiting | None:
        """runAsNonRoot without runAsUser: refuse the container when the image runs as root."""
        if not needs_image_user(pod, container):
            return None
        try:
            status = await self.rt.image_status(image)
        except CRIError as e:
            return Waiting(CREATE_CONFIG_ERROR, e.message)
        img = status.image
        uid = img.uid.value if img.HasField("uid") else None
        error = verify_run_as_non_root(pod, container, uid, img.username)
        if error is None:
            return None
        self._event(pod, ev.WARNING, ev.FAILED, f"Error: {error}", fpath)
        return Waiting(CREATE_CONFIG_ERROR, error)

    async def _start(
        self,
        pod_json: JsonMap,
        pod: Pod,
        runtime: RuntimePod,
        sandbox_id: str,
        sb_config: api.PodSandboxConfig,
        name: str,
    ) -> Waiting | None:
        spec, _ = _container_spec(pod_json, name)
        model = pod.container(name)
        if model is None:
            return Waiting(CREATE_CONFIG_ERROR, f"container {name!r} not in the pod spec")
        fpath = self._field_path(pod, name)
        pulled = await self.ensure_image(
            pod, model.image, model.image_pull_policy, sb_config, fpath
        )
        if isinstance(pulled, Waiting):
            return pulled
        refused = await self._check_non_root(pod, model, pulled, fpath)
        if refused is not None:
            return refused
        prev = runtime.latest(name)
        restart_count = prev.restart_count + 1 if prev is not None else 0
        config = await self._config(
            pod_json, pod, spec, model, restart_count, fpath, sandbox_id=sandbox_id
        )
        if isinstance(config, Waiting):
            return config
        if model.target_container_name:
            target = ephemeral.target_container_id(runtime, model.target_container_name)
            if target is None:
                msg = ephemeral.target_error(model.target_container_name)
                self._event(pod, ev.WARNING, ev.FAILED, f"Error: {msg}", fpath)
                return Waiting(CREATE_CONFIG_ERROR, msg)
            ephemeral.join_target_pid(config, target)
        try:
            cid = await self.rt.create_container(sandbox_id, config, sb_config)
        except CRIError as e:
            self._event(pod, ev.WARNING, ev.FAILED, f"Error: {e.message}", fpath)
            return Waiting(CREATE_ERROR, e.message)
        self._event(pod, ev.NORMAL, ev.CREATED, f"Created container {name}", fpath)
        try:
            await self.rt.start_container(cid)
        except CRIError as e:
            self._event(pod, ev.WARNING, ev.FAILED, f"Error: {e.message}", fpath)
            return Waiting(RUN_ERROR, e.message)
        self._event(pod, ev.NORMAL, ev.STARTED, f"Started container {name}", fpath)
        hook_error = await self.hooks.post_start(pod, model, cid)
        if hook_error is not None:
            # the hook's output may hold secrets: only the status carries it, as upstream
            self._event(pod, ev.WARNING, FAILED_POST_START, "PostStartHook failed", fpath)
            with contextlib.suppress(NotFound):
                await self.rt.stop_container(cid, grace_seconds=pod.grace_period_seconds())
            return Waiting(POST_START_ERROR, hook_error)
        return None

    async def _config(
        self,
        pod_json: JsonMap,
        pod: Pod,
        spec: JsonMap,
        model: Container,
        restart_count: int,
        fpath: str,
        sandbox_id: str = "",
    ) -> api.ContainerConfig | Waiting:
        """The CreateContainer config with env, mounts, the termination-log file and /etc/hosts."""
        try:
            resolved = await self.env.resolve(pod, model)
            mounts = self.volumes.mounts(pod, model)
            mounts += self._termination_log(pod, model, restart_count)
            if self.etc_hosts is not None and self.dns is not None:
                host = self.dns.hostname(pod)
                mounts += await self.etc_hosts.mount(pod, model, sandbox_id, host)
            return container_config(
                pod_json,
                spec,
                attempt=restart_count,
                restart_count=restart_count,
                env=resolved.env,
                command=resolved.command,
                args=resolved.args,
                spec_hash=model.hash,
                mounts=mounts,
                memory_capacity=self.memory_capacity,
            )
        except (ContainerConfigError, PodSpecError, OSError) as e:
            self._event(pod, ev.WARNING, ev.FAILED, f"Error: {e}", fpath)
            return Waiting(CREATE_CONFIG_ERROR, str(e))

    def _termination_log(self, pod: Pod, c: Container, restart_count: int) -> list[api.Mount]:
        """A fresh host file bind-mounted at terminationMessagePath (read back when it exits)."""
        if not c.termination_message_path:
            return []
        directory = self.pods_dir / pod.uid / "containers" / c.name
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"termination-log-{restart_count}"
        path.write_bytes(b"")
        path.chmod(0o666)
        return [api.Mount(container_path=c.termination_message_path, host_path=str(path))]

    async def _pull_auths(self, pod: Pod, image: str, fpath: str) -> list[pullsecrets.RegistryAuth]:
        """The credentials of the pod's imagePullSecrets that match `image`; a secret that is
        missing or unreadable is named in a FailedToRetrieveImagePullSecret event and skipped."""
        names = pullsecrets.secret_names(pod)
        if not names or self.secrets is None:
            return []
        auths: list[pullsecrets.RegistryAuth] = []
        failed: list[str] = []
        for name in names:
            try:
                secret = await self.secrets(pod.namespace, name)
                if secret is None:
                    failed.append(name)
                    continue
                auths += pullsecrets.auths_from_secret(secret)
            except (ApiError, ContainerConfigError, pullsecrets.PullSecretError) as e:
                log.warning("pod %s/%s: image pull secret %s: %s", pod.namespace, pod.name, name, e)
                failed.append(name)
        if failed:
            msg = (
                f"Unable to retrieve some image pull secrets ({', '.join(failed)}); "
                "attempting to pull the image may not succeed."
            )
            self._event(pod, ev.WARNING, ev.FAILED_TO_RETRIEVE_PULL_SECRET, msg, fpath)
        return pullsecrets.lookup(image, auths)

    async def _pull(
        self, image: str, auths: list[pullsecrets.RegistryAuth], sb_config: api.PodSandboxConfig
    ) -> str:
        """Anonymous without credentials, else each matching credential in turn (as upstream:
        the first that works); the last failure is raised."""
        if not auths:
            return await self.rt.pull_image(image, sandbox_config=sb_config)
        error: CRIError | None = None
        for a in auths:
            # No server_address, as upstream: containerd drops credentials whose address
            # does not parse as a URL with the pulled host (a bare "localhost:5000" does not).
            auth = api.AuthConfig(
                username=a.username,
                password=a.password,
                identity_token=a.identity_token,
                registry_token=a.registry_token,
            )
            try:
                return await self.rt.pull_image(image, auth=auth, sandbox_config=sb_config)
            except CRIError as e:
                error = e
        assert error is not None
        raise error

    async def ensure_image(
        self,
        pod: Pod,
        image: str,
        policy: PullPolicy,
        sb_config: api.PodSandboxConfig,
        fpath: str,
    ) -> str | Waiting:
        """The image's reference once present, or why the container must wait for it."""
        if policy != PullPolicy.ALWAYS:
            status = await self.rt.image_status(image)
            if status.HasField("image"):
                if policy == PullPolicy.IF_NOT_PRESENT:
                    self._event(
                        pod,
                        ev.NORMAL,
                        ev.PULLED,
                        f'Container image "{image}" already present on machine',
                        fpath,
                    )
                return status.image.id
            if policy == PullPolicy.NEVER:
                msg = f'Container image "{image}" is not present with pull policy of Never'
                self._event(pod, ev.WARNING, ev.ERR_IMAGE_NEVER_PULL, msg, fpath)
                return Waiting(ERR_IMAGE_NEVER_PULL, msg)
        key = (pod.uid, image)
        now = time.time()
        if self.pull_backoff.is_in_backoff(key, now):
            msg = f'Back-off pulling image "{image}"'
            self._event(pod, ev.NORMAL, ev.BACK_OFF, msg, fpath)
            return Waiting(IMAGE_PULL_BACK_OFF, msg)
        lock = self._pulls.setdefault(image, asyncio.Lock())
        async with lock:
            self._event(pod, ev.NORMAL, ev.PULLING, f'Pulling image "{image}"', fpath)
            t0 = time.monotonic()
            try:
                auths = await self._pull_auths(pod, image, fpath)
                ref = await self._pull(image, auths, sb_config)
            except CRIError as e:
                self.pull_backoff.next(key, now)
                msg = f'Failed to pull image "{image}": {e.message}'
                self._event(pod, ev.WARNING, ev.FAILED, msg, fpath)
                return Waiting(ERR_IMAGE_PULL, msg)
        took = time.monotonic() - t0
        self._event(
            pod, ev.NORMAL, ev.PULLED, f'Successfully pulled image "{image}" in {took:.3f}s', fpath
        )
        self.pull_backoff.reset(key)
        return ref
