"""The checks of `make vagrant-test`, in the order a user would meet them: prepare the nodes,
`kubeadm join`, then systemd, certificates, workloads across the VMs through IPVS, cgroup v2,
the watchdog, and a graceful shutdown with `vagrant halt`. Each is one row of the report.
"""

from __future__ import annotations

import base64
import re
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cluster import joining
from tests.vagrant.kube import Json, Kubectl, resource_pod, web_deployment
from tests.vagrant.vm import HOST_IP, Vagrant, VmError, node_ip

if TYPE_CHECKING:
    from tests.vagrant.run import Run

BUSYBOX = "docker.io/library/busybox:1.35"


def _kubectl(run: Run) -> Kubectl:
    assert run.spec is not None
    return Kubectl(run.spec)


def _vm(run: Run) -> Vagrant:
    if run.vagrant is None:
        raise VmError("no VMs")
    return run.vagrant


def all_checks(run: Run) -> None:
    rep = run.report
    rep.step("nodes prepared (images, crictl, kube-proxy config)", lambda: prepare_nodes(run))
    rep.step("kubeadm join (both workers)", lambda: join(run))
    rep.step("workers Ready", lambda: workers_ready(run))
    rep.step("client certificates from approved CSRs", lambda: csrs_approved(run), fatal=False)
    rep.step("systemd: unit active, READY, verify, journal", lambda: systemd(run), fatal=False)
    rep.step("kube-proxy (IPVS) running on every node", lambda: proxies(run), fatal=False)
    rep.step("Deployment of 4 spread over both workers", lambda: deploy(run), fatal=False)
    rep.step("pod to pod across VMs", lambda: pod_to_pod(run), fatal=False)
    rep.step("ClusterIP over both nodes through IPVS", lambda: cluster_ip(run), fatal=False)
    rep.step("NodePort from the host", lambda: node_port(run), fatal=False)
    rep.step("kubectl logs/exec/port-forward on VM nodes", lambda: node_api(run), fatal=False)
    rep.step("cgroup v2 limits of Guaranteed/Burstable pods", lambda: cgroups(run), fatal=False)
    rep.step("OOM kill shows OOMKilled", lambda: oom(run), fatal=False)
    rep.step("watchdog restarts a SIGSTOPped agent", lambda: watchdog(run), fatal=False)
    rep.step("vagrant halt: graceful node shutdown", lambda: halt(run), fatal=False)
    rep.step("vagrant up again: Ready with no manual step", lambda: up_again(run), fatal=False)


# ---- preparing and joining ------------------------------------------------------------------
def _embedded_kubeconfig(path: Path, server: str) -> str:
    """A copy of a harness kubeconfig with the files inlined and the server replaced."""
    doc: Json = yaml.safe_load(path.read_text())
    for c in doc["clusters"]:
        ca = Path(c["cluster"].pop("certificate-authority"))
        c["cluster"]["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
        c["cluster"]["server"] = server
    for u in doc["users"]:
        for key in ("client-certificate", "client-key"):
            data = Path(u["user"].pop(key)).read_bytes()
            u["user"][f"{key}-data"] = base64.b64encode(data).decode()
    return yaml.safe_dump(doc)


def _proxy_config(run: Run) -> str:
    assert run.spec is not None
    doc = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": "/var/lib/kube-proxy/kubeconfig.conf"},
        "mode": run.proxy_mode,
        "clusterCIDR": run.spec.cluster_cidr,
    }
    return yaml.safe_dump(doc)


def prepare_nodes(run: Run) -> str:
    """Per node, before kubeadm: the images (no registry), crictl (kubeadm's preflight wants
    it), and kube-proxy's config and kubeconfig (kubeadm runs kube-proxy as a DaemonSet; here
    it is a systemd unit, enabled once its files exist)."""
    assert run.spec is not None
    vm = _vm(run)
    server = f"https://{HOST_IP}:{run.spec.ports.apiserver}"
    kubeconfig = _embedded_kubeconfig(run.spec.kubeconfig("kube-proxy"), server)
    errors: list[str] = []

    def one(node: str) -> None:
        try:
            vm.copy(node, [a.path for a in run.archives], "/var/lib/pykubelet-images")
            vm.copy(node, [run.work / "bin" / "crictl"], "/usr/local/bin")
            vm.sh(
                node,
                "for f in /var/lib/pykubelet-images/*.tar; do "
                'ctr -n k8s.io images import --all-platforms "$f" >/dev/null; done; '
                "printf 'runtime-endpoint: unix:///run/containerd/containerd.sock\\n' "
                "> /etc/crictl.yaml",
                timeout=900,
            )
            vm.put(node, "/var/lib/kube-proxy/kubeconfig.conf", kubeconfig, "0600")
            vm.put(node, "/var/lib/kube-proxy/config.conf", _proxy_config(run))
            vm.put(node, "/etc/default/kube-proxy", "KUBE_PROXY_EXTRA_ARGS=--node-routes=host-gw\n")
        except Exception as e:
            errors.append(f"{node}: {e}")

    _parallel(one, run.nodes)
    if errors:
        raise VmError("; ".join(errors))
    return f"{len(run.archives)} images imported on {len(run.nodes)} nodes"


def _parallel(fn: Any, items: list[str]) -> None:
    threads = [threading.Thread(target=fn, args=(i,)) for i in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def join(run: Run) -> str:
    """The real, unmodified `kubeadm join` on each worker, as `pykubelet up --joinable`
    printed it."""
    assert run.spec is not None
    command = joining.join_command_path(run.spec).read_text().strip()
    vm = _vm(run)
    errors: list[str] = []
    took: dict[str, float] = {}

    def one(node: str) -> None:
        t0 = time.monotonic()
        r = vm.sh(
            node, f"{command} --v=1 > /var/log/kubeadm-join.log 2>&1", check=False, timeout=900
        )
        took[node] = time.monotonic() - t0
        if r.returncode != 0:
            log = vm.sh(node, "tail -25 /var/log/kubeadm-join.log", check=False).stdout
            errors.append(f"{node}: kubeadm join exited {r.returncode}:\n{log}")

    _parallel(one, run.nodes)
    if errors:
        raise VmError("\n".join(errors))
    return ", ".join(f"{n} {s:.0f}s" for n, s in sorted(took.items()))


def workers_ready(run: Run) -> str:
    k = _kubectl(run)
    k.wait("both workers Ready", lambda: set(run.nodes) <= set(k.ready_nodes()), 300)
    return ", ".join(k.ready_nodes())


def csrs_approved(run: Run) -> str:
    k = _kubectl(run)
    found: dict[str, list[str]] = {}
    for csr in k.json("get", "csr")["items"]:
        spec, status = csr["spec"], csr.get("status", {})
        if spec.get("signerName") != "kubernetes.io/kube-apiserver-client-kubelet":
            continue
        approved = any(c["type"] == "Approved" for c in status.get("conditions", []))
        if approved and status.get("certificate"):
            found.setdefault(spec["username"], []).append(csr["metadata"]["name"])
    boot = [u for u in found if u.startswith("system:bootstrap:")]
    if not boot:
        raise AssertionError(f"no approved bootstrap CSR: {found}")
    vm = _vm(run)
    for node in run.nodes:
        link = vm.sh(node, "readlink /var/lib/kubelet/pki/kubelet-client-current.pem").stdout
        conf = vm.sh(node, "grep -c kubelet-client-current.pem /etc/kubernetes/kubelet.conf")
        if "kubelet-client-" not in link or conf.stdout.strip() == "0":
            raise AssertionError(f"{node}: client cert layout: {link!r}")
    return f"approved+issued CSRs by {sorted(found)}"


# ---- systemd -----------------------------------------------------------------------------
def _show(vm: Vagrant, node: str, unit: str) -> dict[str, str]:
    out = vm.sh(node, f"systemctl show {unit} -p ActiveState,Type,NRestarts,MainPID,StatusText")
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def systemd(run: Run) -> str:
    vm = _vm(run)
    node = run.nodes[0]
    props = _show(vm, node, "kubelet")
    if props.get("ActiveState") != "active" or props.get("Type") != "notify":
        raise AssertionError(f"kubelet unit: {props}")
    verify = vm.sh(
        node, "systemd-analyze verify /etc/systemd/system/kubelet.service 2>&1; echo rc=$?"
    ).stdout
    if verify.strip() != "rc=0":
        raise AssertionError(f"systemd-analyze verify: {verify.strip()[-400:]}")
    journal = vm.sh(node, "journalctl -u kubelet --no-pager -n 200 -o cat").stdout
    if "running as node" not in journal:
        raise AssertionError(f"journal has no agent start line: {journal[-400:]}")
    return f"Type=notify active (READY reached), StatusText={props.get('StatusText', '')!r}"


def proxies(run: Run) -> str:
    vm = _vm(run)
    out = []
    for node in run.nodes:
        vm.sh(node, "systemctl enable --now kube-proxy")
        k = _show(vm, node, "kube-proxy")
        if k.get("ActiveState") != "active":
            log = vm.sh(node, "journalctl -u kube-proxy --no-pager -n 20 -o cat").stdout
            raise AssertionError(f"{node}: kube-proxy {k}: {log[-600:]}")
        out.append(f"{node} active")
    return ", ".join(out)


# ---- workloads ------------------------------------------------------------------------------
def _web_pods(k: Kubectl) -> list[Json]:
    return [
        p
        for p in k.pods("app=web")
        if p["status"].get("phase") == "Running"
        and p["status"].get("podIP")
        and "deletionTimestamp" not in p["metadata"]
        and all(c.get("ready") for c in p["status"].get("containerStatuses", []))
    ]


def deploy(run: Run) -> str:
    k = _kubectl(run)
    k.apply(*web_deployment(BUSYBOX, 4))
    pods = k.wait(
        "4 web pods Running and Ready", lambda: len(_web_pods(k)) >= 4 and _web_pods(k), 420
    )
    per_node = Counter(p["spec"]["nodeName"] for p in pods)
    if set(per_node) != set(run.nodes):
        raise AssertionError(f"not spread over both workers: {dict(per_node)}")
    return f"{dict(per_node)}"


def _exec(k: Kubectl, pod: str, *cmd: str) -> str:
    return k.run("exec", pod, "--", *cmd, timeout=60)


def pod_to_pod(run: Run) -> str:
    k = _kubectl(run)
    pods = _web_pods(k)
    a = next(p for p in pods if p["spec"]["nodeName"] == run.nodes[0])
    b = next(p for p in pods if p["spec"]["nodeName"] == run.nodes[1])
    got = _exec(
        k, a["metadata"]["name"], "wget", "-qO-", "-T", "5", f"http://{b['status']['podIP']}/"
    )
    if got.strip() != b["metadata"]["name"]:
        raise AssertionError(f"{a['metadata']['name']} -> {b['status']['podIP']}: {got!r}")
    return f"{a['metadata']['name']} ({run.nodes[0]}) -> {b['metadata']['name']} ({run.nodes[1]})"


def cluster_ip(run: Run) -> str:
    k = _kubectl(run)
    vm = _vm(run)
    svc = k.json("get", "service", "web")
    ip = svc["spec"]["clusterIP"]
    if run.proxy_mode == "ipvs":
        table = vm.sh(run.nodes[0], "ipvsadm -Ln").stdout
        if f"{ip}:80" not in table:
            raise AssertionError(f"ipvsadm -Ln has no {ip}:80:\n{table[-800:]}")
    pods = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in _web_pods(k)}
    client = next(iter(pods))
    seen: Counter[str] = Counter()
    for _ in range(24):
        seen[_exec(k, client, "wget", "-qO-", "-T", "5", f"http://{ip}/").strip()] += 1
    nodes = {pods.get(name, "?") for name in seen}
    if not set(run.nodes) <= nodes:
        raise AssertionError(f"answers only from {nodes}: {dict(seen)}")
    return f"{ip}:80 answered by {len(seen)} pods on {sorted(nodes)} (24 requests)"


def node_port(run: Run) -> str:
    k = _kubectl(run)
    port = k.json("get", "service", "web")["spec"]["ports"][0]["nodePort"]
    answers = []
    for node in run.nodes:
        url = f"http://{node_ip(node)}:{port}/"
        with urllib.request.urlopen(url, timeout=10) as r:
            answers.append(r.read().decode().strip())
    return f"port {port} on {len(answers)} nodes: {answers}"


def node_api(run: Run) -> str:
    k = _kubectl(run)
    pod = next(p for p in _web_pods(k) if p["spec"]["nodeName"] == run.nodes[1])
    name = pod["metadata"]["name"]
    if name not in _exec(k, name, "hostname"):
        raise AssertionError("exec")
    k.run("logs", name)
    pf = subprocess.Popen(
        [k.binary, f"--kubeconfig={k.kubeconfig}", "port-forward", name, "18080:80"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = k.wait(
            "port-forward answers",
            lambda: urllib.request.urlopen("http://127.0.0.1:18080/", timeout=5).read().decode(),
            60,
        )
    finally:
        pf.terminate()
        pf.wait(10)
    if body.strip() != name:
        raise AssertionError(f"port-forward got {body!r}")
    return f"exec, logs and port-forward to {name} on {run.nodes[1]}"


# ---- cgroup v2 ------------------------------------------------------------------------------
_GUARANTEED = {
    "requests": {"cpu": "250m", "memory": "64Mi"},
    "limits": {"cpu": "250m", "memory": "64Mi"},
}
_BURSTABLE = {
    "requests": {"cpu": "100m", "memory": "32Mi"},
    "limits": {"cpu": "500m", "memory": "128Mi"},
}


def _pod_cgroup_files(vm: Vagrant, node: str, uid: str) -> dict[str, str]:
    """cpu.max, memory.max, pids.max of the pod's cgroup on the node (either driver's name)."""
    script = (
        f"d=$(find /sys/fs/cgroup -maxdepth 5 -type d \\( -name '*pod{uid}*' -o "
        f"-name '*pod{uid.replace('-', '_')}*' \\) | head -1); echo dir=$d; "
        "for f in cpu.max memory.max pids.max; do echo $f=$(cat $d/$f); done"
    )
    out = vm.sh(node, script).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def cgroups(run: Run) -> str:
    k = _kubectl(run)
    vm = _vm(run)
    node = run.nodes[0]
    k.apply(
        resource_pod("guaranteed", node, BUSYBOX, _GUARANTEED, "sleep 3600"),
        resource_pod("burstable", node, BUSYBOX, _BURSTABLE, "sleep 3600"),
    )
    want = {
        "guaranteed": ("25000 100000", str(64 << 20), "Guaranteed"),
        "burstable": ("50000 100000", str(128 << 20), "Burstable"),
    }
    seen = []
    for name, (cpu, mem, qos) in want.items():
        pod = k.wait(f"{name} Running", lambda n=name: _running(k, n), 180)
        if pod["status"].get("qosClass") != qos:
            raise AssertionError(f"{name}: qosClass {pod['status'].get('qosClass')}")
        files = _pod_cgroup_files(vm, node, pod["metadata"]["uid"])
        inside = _exec(k, name, "cat", "/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/memory.max")
        if files.get("cpu.max") != cpu or files.get("memory.max") != mem:
            raise AssertionError(f"{name}: pod cgroup {files}, want cpu {cpu} memory {mem}")
        if inside.split() != [*cpu.split(), mem]:
            raise AssertionError(f"{name}: container sees {inside!r}")
        seen.append(f"{name} cpu.max={cpu} memory.max={mem} pids.max={files.get('pids.max')}")
    return "; ".join(seen)


def _running(k: Kubectl, name: str) -> Json | None:
    pod: Json = k.json("get", "pod", name)
    return pod if pod["status"].get("phase") == "Running" else None


def oom(run: Run) -> str:
    k = _kubectl(run)
    resources = {"limits": {"memory": "32Mi"}, "requests": {"memory": "32Mi"}}
    k.apply(resource_pod("oom", run.nodes[1], BUSYBOX, resources, "tail /dev/zero"))

    def terminated() -> Json | None:
        st = k.json("get", "pod", "oom")["status"].get("containerStatuses", [{}])[0]
        term: Json | None = st.get("state", {}).get("terminated")
        return term

    term = k.wait("oom pod terminated", terminated, 180)
    if term.get("reason") != "OOMKilled" or term.get("exitCode") != 137:
        raise AssertionError(f"terminated {term}")
    return "reason OOMKilled, exit 137"


# ---- the agent's life under systemd ------------------------------------------------------------
def watchdog(run: Run) -> str:
    vm = _vm(run)
    node = run.nodes[1]
    before = _show(vm, node, "kubelet")
    vm.sh(node, f"kill -STOP {before['MainPID']}")
    t0 = time.monotonic()
    after = _wait_restart(vm, node, before, 150)
    return (
        f"SIGSTOP pid {before['MainPID']}: restarted as {after['MainPID']} after "
        f"{time.monotonic() - t0:.0f}s (NRestarts {before['NRestarts']} -> {after['NRestarts']})"
    )


def _wait_restart(vm: Vagrant, node: str, before: dict[str, str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = _show(vm, node, "kubelet")
        if now["MainPID"] not in ("0", before["MainPID"]) and now["ActiveState"] == "active":
            return now
        time.sleep(3)
    raise AssertionError(f"{node}: kubelet not restarted within {timeout}s: {now}")


def halt(run: Run) -> str:
    """`vagrant halt` the first worker: logind's PrepareForShutdown reaches the agent through
    its inhibitor lock; its pods get their preStop and end Failed with reason Terminated."""
    k = _kubectl(run)
    node = run.nodes[0]
    victims = [p["metadata"]["name"] for p in _web_pods(k) if p["spec"]["nodeName"] == node]
    if not victims:
        raise AssertionError(f"no web pod on {node}")
    _vm(run).run("halt", node, log="vagrant-halt", timeout=600)

    def ended() -> dict[str, str] | None:
        out = {}
        for name in victims:
            try:
                st = k.json("get", "pod", name)["status"]
            except Exception:
                out[name] = "gone"
                continue
            out[name] = f"{st.get('phase')}/{st.get('reason', '')}"
        return out if all(v == "Failed/Terminated" for v in out.values()) else None

    got = k.wait(f"pods on {node} Failed/Terminated", ended, 120)
    return f"{node} halted; {got}"


def up_again(run: Run) -> str:
    k = _kubectl(run)
    node = run.nodes[0]
    t0 = time.monotonic()
    _vm(run).run("up", node, log="vagrant-up-again", timeout=1800)
    k.wait(f"{node} Ready again", lambda: node in k.ready_nodes(), 420)
    return f"{node} Ready {time.monotonic() - t0:.0f}s after `vagrant up`"


# ---- the host -------------------------------------------------------------------------------
def host_clean() -> str:
    """Nothing of ours left: no pykvbr0 or vnet taps, no qemu of ours, no libvirt networks,
    domains or pools of ours, no iptables rules naming our range."""
    left = []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    left += [f"link {m}" for m in re.findall(r"^\d+: (pykvbr0|vnet\d+)[:@]", links, re.M)]
    ps = subprocess.run(["pgrep", "-af", "qemu-system.*pykubelet-"], capture_output=True, text=True)
    left += [f"process {line[:60]}" for line in ps.stdout.splitlines()]
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    left += [f"iptables {r}" for r in rules.splitlines() if "198.18.1." in r or "pykvbr0" in r]
    if left:
        raise AssertionError("; ".join(left))
    return "no bridge, taps, VMs or rules of ours"
