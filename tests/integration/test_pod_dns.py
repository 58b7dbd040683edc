"""Inside the pod: the managed /etc/hosts (header, pod IP line, hostAliases, hostNetwork copy, own
mount), /etc/resolv.conf from dnsPolicy and dnsConfig, hostname, subdomain and setHostnameAsFQDN.

The harness's agent has clusterDNS (the kube-dns address) and clusterDomain cluster.local, as
`up` writes them (cluster/up.py agent_config): ClusterFirst gives `nameserver <clusterDNS>`, the
`<ns>.svc.<domain>` searches and ndots:5, and a subdomain's domain is `<sub>.<ns>.svc.<domain>`.
Nothing here needs DNS to answer. Without clusterDNS (MissingClusterDNS, the fallback to
Default) see tests/unit/kubelet/pods/test_dns.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cluster import dns
from cluster.spec import ClusterSpec
from kubelet.pods.decode import pod_from_api
from kubelet.pods.dns import parse_resolv_conf, pod_dns, render_resolv_conf
from kubelet.runtime.criconfig import DNSSettings

from .podutil import container, create_pod, cstatus, events, pod_body, wait_pod

SEP = "=====\n"
REPORT = (
    "{ cat /etc/hosts; echo =====; cat /etc/resolv.conf; echo =====; hostname; }"
    " > /dev/termination-log"
)
ALIASES = [
    {"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]},
    {"ip": "10.1.2.4", "hostnames": ["baz.remote"]},
]
ALIAS_LINES = (
    "\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n10.1.2.4\tbaz.remote\n"
)


def _report(spec: ClusterSpec, ns: str, name: str, **pod_spec: Any) -> tuple[dict[str, Any], str]:
    """Run one reporting container; its pod (with status) and its termination message."""
    body = pod_body(name, [container("c", REPORT)], restart="Never")
    body["spec"].update(pod_spec)
    create_pod(spec, ns, body)

    def done(p: dict[str, Any]) -> bool:
        return "terminated" in cstatus(p, "c").get("state", {})

    pod = wait_pod(spec, ns, name, done, 60, "reporting container terminated")
    term = cstatus(pod, "c")["state"]["terminated"]
    assert term["exitCode"] == 0, term
    return pod, str(term.get("message", ""))


def _parts(message: str) -> tuple[str, str, str]:
    hosts, resolv, hostname = message.split(SEP)
    return hosts, resolv, hostname.strip()


def test_managed_hosts_with_aliases_and_subdomain(cluster_spec: ClusterSpec, ns: str) -> None:
    pod, msg = _report(
        cluster_spec, ns, "hosts-managed", hostname="box", subdomain="grp", hostAliases=ALIASES
    )
    hosts, _, hostname = _parts(msg)
    ip = pod["status"]["podIP"]
    assert hosts == (
        "# Kubernetes-managed hosts file.\n"
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\n"
        "fe00::0\tip6-mcastprefix\n"
        "fe00::1\tip6-allnodes\n"
        "fe00::2\tip6-allrouters\n"
        f"{ip}\tbox.grp.{ns}.svc.cluster.local\tbox\n" + ALIAS_LINES
    )
    assert hostname == "box"


def test_hostname_is_the_pod_name_and_fqdn_when_asked(cluster_spec: ClusterSpec, ns: str) -> None:
    pod, msg = _report(cluster_spec, ns, "plain-name")
    hosts, _, hostname = _parts(msg)
    assert hostname == "plain-name"
    assert f"{pod['status']['podIP']}\tplain-name\n" in hosts
    assert "HostAliases" not in hosts
    _, msg = _report(
        cluster_spec, ns, "fqdn", hostname="fq", subdomain="grp", setHostnameAsFQDN=True
    )
    assert _parts(msg)[2] == f"fq.grp.{ns}.svc.cluster.local"


def test_container_mounting_etc_hosts_keeps_its_own(cluster_spec: ClusterSpec, ns: str) -> None:
    c = container("c", "test -d /etc/hosts && echo -n own-dir > /dev/termination-log")
    c["volumeMounts"] = [{"name": "h", "mountPath": "/etc/hosts"}]
    body = pod_body("own-hosts", [c], restart="Never")
    body["spec"]["volumes"] = [{"name": "h", "emptyDir": {}}]
    create_pod(cluster_spec, ns, body)

    def done(p: dict[str, Any]) -> bool:
        return "terminated" in cstatus(p, "c").get("state", {})

    pod = wait_pod(cluster_spec, ns, "own-hosts", done, 60, "terminated")
    assert cstatus(pod, "c")["state"]["terminated"].get("message") == "own-dir"


def _node_resolv_conf() -> str:
    """What containerd writes for the agent's default resolvConf (/etc/resolv.conf)."""
    host = parse_resolv_conf(Path("/etc/resolv.conf").read_text())
    return render_resolv_conf(DNSSettings(host.nameservers, host.searches, host.options))


def test_default_policy_copies_the_node_resolv_conf(cluster_spec: ClusterSpec, ns: str) -> None:
    _, msg = _report(cluster_spec, ns, "dns-default", dnsPolicy="Default")
    assert _parts(msg)[1] == _node_resolv_conf()


def test_cluster_first_uses_cluster_dns(cluster_spec: ClusterSpec, ns: str) -> None:
    pod, msg = _report(cluster_spec, ns, "dns-cluster-first")
    resolv = _parts(msg)[1]
    server = dns.service_ip(cluster_spec.service_cidr)
    node = Path("/etc/resolv.conf").read_text()
    assert resolv == render_resolv_conf(
        pod_dns(pod_from_api(pod), node, (server,), dns.DOMAIN).settings
    )
    lines = resolv.splitlines()
    assert f"nameserver {server}" in lines and "options ndots:5" in lines
    assert lines[0].startswith(f"search {ns}.svc.cluster.local svc.cluster.local cluster.local")
    assert not [
        e
        for e in events(cluster_spec, ns, "dns-cluster-first")
        if e["reason"] == "MissingClusterDNS"
    ]


def test_none_policy_uses_only_dns_config(cluster_spec: ClusterSpec, ns: str) -> None:
    dns_config = {
        "nameservers": ["1.2.3.4", "5.6.7.8"],
        "searches": ["a.example", "b.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
    }
    _, msg = _report(cluster_spec, ns, "dns-none", dnsPolicy="None", dnsConfig=dns_config)
    assert _parts(msg)[1] == (
        "search a.example b.example\n"
        "nameserver 1.2.3.4\n"
        "nameserver 5.6.7.8\n"
        "options ndots:2 edns0\n"
    )


def test_default_policy_merges_dns_config(cluster_spec: ClusterSpec, ns: str) -> None:
    dns_config = {
        "nameservers": ["9.9.9.9"],
        "searches": ["extra.example"],
        "options": [{"name": "ndots", "value": "3"}, {"name": "attempts", "value": "2"}],
    }
    pod, msg = _report(cluster_spec, ns, "dns-merge", dnsPolicy="Default", dnsConfig=dns_config)
    node = Path("/etc/resolv.conf").read_text()
    expected = pod_dns(pod_from_api(pod), node, (), "").settings
    assert "9.9.9.9" in expected.nameservers and "ndots:3" in expected.options
    assert _parts(msg)[1] == render_resolv_conf(expected)


def test_host_network_pod_gets_the_node_hosts_file(cluster_spec: ClusterSpec, ns: str) -> None:
    _, msg = _report(cluster_spec, ns, "hostnet-hosts", hostNetwork=True, hostAliases=ALIASES)
    hosts, resolv, _ = _parts(msg)
    node_hosts = Path("/etc/hosts").read_text()
    assert hosts == "# Kubernetes-managed hosts file (host network).\n" + node_hosts + ALIAS_LINES
    assert resolv == _node_resolv_conf()  # ClusterFirst on hostNetwork means Default
