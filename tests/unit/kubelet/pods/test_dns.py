"""Pod DNS tables: resolv.conf parsing, dnsPolicy/dnsConfig/clusterDNS into the sandbox's DNSConfig
with upstream's limits and warnings, hostname/subdomain/FQDN, and the executor's sandbox config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubelet import events as ev
from kubelet.pods.backoff import BackOff
from kubelet.pods.decode import pod_from_api
from kubelet.pods.dns import (
    DNS_CONFIG_FORMING,
    MISSING_CLUSTER_DNS,
    DNSConfigurer,
    PodHostname,
    ResolvConf,
    ResolvConfError,
    parse_resolv_conf,
    pod_dns,
    pod_hostname,
    read_resolv_conf,
    render_resolv_conf,
)
from kubelet.pods.executor import PodExecutor
from kubelet.pods.model import Pod, PodSpecError
from kubelet.runtime.criconfig import DNSSettings

HOST = "nameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch corp.example lab.example\noptions rotate\n"
CLUSTER = ("10.96.0.10",)
DOMAIN = "cluster.local"
MISSING_MSG = (
    'pod: "web_team(u1)". kubelet does not have ClusterDNS IP configured and cannot create Pod '
    'using "ClusterFirst" policy. Falling back to "Default" policy.'
)


def pod_json(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "team", "uid": "u1"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


def pod(**spec: Any) -> Pod:
    return pod_from_api(pod_json(**spec))


# ---------------------------------------------------------------------------- resolv.conf


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ResolvConf()),
        (HOST, ResolvConf(("10.0.0.2", "10.0.0.3"), ("corp.example", "lab.example"), ("rotate",))),
        (
            "# comment\n  nameserver 1.1.1.1 ignored\ndomain x.example\n"
            "search a b\nsearch c. . d\n",
            ResolvConf(("1.1.1.1",), ("c", "d"), ()),
        ),
        (
            "options ndots:1 timeout:2\noptions ndots:3 edns0\n",
            ResolvConf((), (), ("ndots:3", "timeout:2", "edns0")),
        ),
        ("nameserver\t8.8.8.8\r\n#nameserver 9.9.9.9\n", ResolvConf(("8.8.8.8",), (), ())),
    ],
)
def test_parse_resolv_conf(text: str, expected: ResolvConf) -> None:
    assert parse_resolv_conf(text) == expected


def test_bare_nameserver_is_an_error() -> None:
    with pytest.raises(ResolvConfError, match="nameserver list is empty"):
        parse_resolv_conf("nameserver 1.1.1.1\nnameserver\n")


# ---------------------------------------------------------------------------- policies

HOST_SETTINGS = DNSSettings(("10.0.0.2", "10.0.0.3"), ("corp.example", "lab.example"), ("rotate",))
CLUSTER_SETTINGS = DNSSettings(
    ("10.96.0.10",),
    ("team.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example", "lab.example"),
    ("ndots:5",),
)


@pytest.mark.parametrize(
    ("spec", "resolv", "cluster_dns", "domain", "expected", "reasons"),
    [
        pytest.param(
            {}, HOST, CLUSTER, DOMAIN, CLUSTER_SETTINGS, (), id="default-is-cluster-first"
        ),
        pytest.param(
            {"dnsPolicy": "ClusterFirst"},
            HOST,
            CLUSTER,
            "",
            DNSSettings(CLUSTER, ("corp.example", "lab.example"), ("ndots:5",)),
            (),
            id="cluster-first-no-domain",
        ),
        pytest.param(
            {"dnsPolicy": "ClusterFirst"},
            HOST,
            (),
            DOMAIN,
            HOST_SETTINGS,
            (MISSING_CLUSTER_DNS,),
            id="cluster-first-without-cluster-dns",
        ),
        pytest.param(
            {"dnsPolicy": "ClusterFirst", "hostNetwork": True},
            HOST,
            CLUSTER,
            DOMAIN,
            HOST_SETTINGS,
            (),
            id="host-network-cluster-first-is-default",
        ),
        pytest.param(
            {"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": True},
            HOST,
            CLUSTER,
            DOMAIN,
            CLUSTER_SETTINGS,
            (),
            id="cluster-first-with-host-net",
        ),
        pytest.param(
            {"dnsPolicy": "ClusterFirstWithHostNet"},
            HOST,
            CLUSTER,
            DOMAIN,
            CLUSTER_SETTINGS,
            (),
            id="cluster-first-with-host-net-pod-network",
        ),
        pytest.param(
            {"dnsPolicy": "Default"}, HOST, CLUSTER, DOMAIN, HOST_SETTINGS, (), id="default"
        ),
        pytest.param(
            {"dnsPolicy": "None"}, HOST, CLUSTER, DOMAIN, DNSSettings(), (), id="none-empty"
        ),
        pytest.param(
            {
                "dnsPolicy": "None",
                "dnsConfig": {
                    "nameservers": ["1.2.3.4", "1.2.3.4"],
                    "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
                    "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
                },
            },
            HOST,
            CLUSTER,
            DOMAIN,
            DNSSettings(
                ("1.2.3.4",),
                ("ns1.svc.cluster-domain.example", "my.dns.search.suffix"),
                ("ndots:2", "edns0"),
            ),
            (),
            id="none-with-dns-config",
        ),
        pytest.param(
            {
                "dnsConfig": {
                    "nameservers": ["10.96.0.10", "8.8.8.8"],
                    "searches": ["svc.cluster.local", "extra.example"],
                    "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}],
                },
            },
            HOST,
            CLUSTER,
            DOMAIN,
            DNSSettings(
                ("10.96.0.10", "8.8.8.8"),
                (*CLUSTER_SETTINGS.searches, "extra.example"),
                ("ndots:1", "single-request"),
            ),
            (),
            id="cluster-first-plus-dns-config-merged",
        ),
        pytest.param(
            {"dnsPolicy": "Default", "dnsConfig": {"options": [{"name": "rotate", "value": ""}]}},
            HOST,
            (),
            "",
            HOST_SETTINGS,
            (),
            id="empty-option-value",
        ),
        pytest.param(
            {"dnsPolicy": "Bogus"}, HOST, CLUSTER, DOMAIN, CLUSTER_SETTINGS, (), id="unknown-policy"
        ),
        pytest.param(
            {"dnsPolicy": "Default"},
            "nameserver 10.96.0.10\nsearch svc.cluster.local x\n",
            CLUSTER,
            DOMAIN,
            DNSSettings(("10.96.0.10",), ("svc.cluster.local", "x"), ()),
            (),
            id="host-searches-as-is",
        ),
    ],
)
def test_pod_dns(
    spec: dict[str, Any],
    resolv: str,
    cluster_dns: tuple[str, ...],
    domain: str,
    expected: DNSSettings,
    reasons: tuple[str, ...],
) -> None:
    result = pod_dns(pod(**spec), resolv, cluster_dns, domain)
    assert result.settings == expected
    assert tuple(w.reason for w in result.warnings) == reasons


def test_missing_cluster_dns_message() -> None:
    result = pod_dns(pod(), HOST, (), DOMAIN)
    assert [w.message for w in result.warnings] == [MISSING_MSG]


@pytest.mark.parametrize(
    ("spec", "node_ips", "expected"),
    [
        ({"dnsPolicy": "Default"}, (), DNSSettings(("127.0.0.1",), (".",), ())),
        (
            {"dnsPolicy": "Default"},
            ("192.168.1.5", "fd00::5"),
            DNSSettings(("127.0.0.1", "::1"), (".",), ()),
        ),
        ({}, (), DNSSettings(("127.0.0.1",), (".",), ())),
        ({"dnsPolicy": "None"}, ("10.0.0.1",), DNSSettings()),
    ],
)
def test_no_resolv_conf(
    spec: dict[str, Any], node_ips: tuple[str, ...], expected: DNSSettings
) -> None:
    """resolvConf "": localhost nameservers per node IP family and the search line "."."""
    assert pod_dns(pod(**spec), None, (), DOMAIN, node_ips).settings == expected


def test_cluster_dns_ips_are_canonical() -> None:
    result = pod_dns(pod(), HOST, ("fd00:0::a", "::ffff:10.96.0.10"), DOMAIN)
    assert result.settings.nameservers == ("fd00::a", "10.96.0.10")


# ---------------------------------------------------------------------------- limits


def test_nameservers_over_three_are_cut() -> None:
    spec = {"dnsPolicy": "Default", "dnsConfig": {"nameservers": ["1.1.1.1", "2.2.2.2"]}}
    result = pod_dns(pod(**spec), HOST, (), "")
    assert result.settings.nameservers == ("10.0.0.2", "10.0.0.3", "1.1.1.1")
    assert [(w.reason, w.message) for w in result.warnings] == [
        (
            DNS_CONFIG_FORMING,
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied "
            "nameserver line is: 10.0.0.2 10.0.0.3 1.1.1.1",
        )
    ]


def _searches(searches: list[str]) -> tuple[tuple[str, ...], list[str]]:
    spec = {"dnsPolicy": "None", "dnsConfig": {"searches": searches}}
    result = pod_dns(pod(**spec), None, (), "")
    return result.settings.searches, [w.message for w in result.warnings]


def test_search_paths_over_32_are_cut() -> None:
    names = [f"d{i}.example" for i in range(40)]
    kept, warnings = _searches(names)
    assert kept == tuple(names[:32])
    assert warnings == [
        "Search Line limits were exceeded, some search paths have been omitted, the applied "
        f"search line is: {' '.join(names[:32])}"
    ]


def test_search_path_over_253_chars_is_dropped() -> None:
    long = "a" * 254
    kept, warnings = _searches(["x.example", long, "y.example"])
    assert kept == ("x.example", "y.example")
    assert len(warnings) == 1


def test_search_line_over_2048_chars_is_cut_from_the_end() -> None:
    names = [f"{i:02d}" + "b" * 198 for i in range(12)]  # 12 x 200 chars + 11 spaces = 2411
    kept, warnings = _searches(names)
    assert kept == tuple(names[:10])  # 10 x 200 + 9 = 2009
    assert len(" ".join(kept)) <= 2048 and len(warnings) == 1


def test_within_limits_no_warning() -> None:
    names = [f"{i:02d}" + "c" * 198 for i in range(10)]
    assert _searches(names) == (tuple(names), [])


def test_render_resolv_conf() -> None:
    text = render_resolv_conf(CLUSTER_SETTINGS)
    assert text == (
        "search team.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n"
    )
    assert render_resolv_conf(DNSSettings()) == ""


# ---------------------------------------------------------------------------- hostname


@pytest.mark.parametrize(
    ("meta_name", "spec", "domain", "expected"),
    [
        ("web", {}, DOMAIN, PodHostname("web", "", "web")),
        ("web", {"hostname": "box"}, DOMAIN, PodHostname("box", "", "box")),
        (
            "web",
            {"hostname": "box", "subdomain": "grp"},
            DOMAIN,
            PodHostname("box", "grp.team.svc.cluster.local", "box"),
        ),
        (
            "web",
            {"subdomain": "grp", "setHostnameAsFQDN": True},
            DOMAIN,
            PodHostname("web", "grp.team.svc.cluster.local", "web.grp.team.svc.cluster.local"),
        ),
        ("web", {"setHostnameAsFQDN": True}, DOMAIN, PodHostname("web", "", "web")),
        ("web", {"subdomain": "grp"}, "", PodHostname("web", "grp.team.svc.", "web")),
        ("a" * 62 + "-b", {}, DOMAIN, PodHostname("a" * 62, "", "a" * 62)),
        ("x" * 70, {}, DOMAIN, PodHostname("x" * 63, "", "x" * 63)),
        (
            "web",
            {"hostnameOverride": "node.example.com", "subdomain": "grp", "hostname": "box"},
            DOMAIN,
            PodHostname("node.example.com", "", "node.example.com"),
        ),
    ],
)
def test_pod_hostname(
    meta_name: str, spec: dict[str, Any], domain: str, expected: PodHostname
) -> None:
    p = pod_json(**spec)
    p["metadata"]["name"] = meta_name
    assert pod_hostname(pod_from_api(p), domain) == expected


def test_fqdn_property() -> None:
    assert PodHostname("box", "grp.team.svc.cluster.local").fqdn == (
        "box.grp.team.svc.cluster.local"
    )
    assert PodHostname("box").fqdn == "box"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"hostname": "Box_1"}, "spec.hostname: 'Box_1' is not a valid DNS label"),
        ({"subdomain": "a.b"}, "spec.subdomain: 'a.b' is not a valid DNS label"),
        ({"hostnameOverride": "-x"}, "spec.hostnameOverride: '-x' is not a valid DNS subdomain"),
        (
            {"hostname": "h" * 30, "subdomain": "s" * 20, "setHostnameAsFQDN": True},
            "FQDN .* is too long \\(64 characters is the max, 74 characters requested\\)",
        ),
    ],
)
def test_pod_hostname_errors(spec: dict[str, Any], match: str) -> None:
    with pytest.raises(PodSpecError, match=match):
        pod_hostname(pod(**spec), DOMAIN)


# ---------------------------------------------------------------------------- I/O side


def test_read_resolv_conf(tmp_path: Path) -> None:
    assert read_resolv_conf("") is None
    f = tmp_path / "resolv.conf"
    f.write_text(HOST)
    assert read_resolv_conf(str(f)) == HOST
    with pytest.raises(ResolvConfError, match="could not open"):
        read_resolv_conf(str(tmp_path / "missing"))


def test_configurer_reads_the_file_each_time(tmp_path: Path) -> None:
    f = tmp_path / "resolv.conf"
    f.write_text(HOST)
    dns = DNSConfigurer(resolv_conf=str(f), cluster_domain=DOMAIN)
    assert dns.pod_dns(pod(dnsPolicy="Default")).settings == HOST_SETTINGS
    f.write_text("nameserver 9.9.9.9\n")
    assert dns.pod_dns(pod(dnsPolicy="Default")).settings.nameservers == ("9.9.9.9",)
    f.write_text("nameserver\n")
    with pytest.raises(PodSpecError, match="nameserver list is empty"):
        dns.pod_dns(pod(dnsPolicy="Default"))


class _Recorder:
    def __init__(self) -> None:
        self.events: list[ev.PodEvent] = []

    def record(self, event: ev.PodEvent) -> None:
        self.events.append(event)


def _executor(tmp_path: Path, dns: DNSConfigurer | None) -> tuple[PodExecutor, _Recorder]:
    rec = _Recorder()
    executor = PodExecutor(
        None,  # type: ignore[arg-type]  # sandbox_config makes no runtime call
        rec,  # type: ignore[arg-type]
        log_root="/logs",
        pods_dir=tmp_path / "pods",
        backoff=BackOff(),
        memory_capacity=1 << 30,
        dns=dns,
    )
    return executor, rec


def test_executor_sandbox_config(tmp_path: Path) -> None:
    f = tmp_path / "resolv.conf"
    f.write_text(HOST)
    dns = DNSConfigurer(resolv_conf=str(f), cluster_domain=DOMAIN)
    executor, rec = _executor(tmp_path, dns)
    p = pod_json(subdomain="grp", setHostnameAsFQDN=True)
    cfg = executor.sandbox_config(p, pod_from_api(p), 0)
    assert list(cfg.dns_config.servers) == list(HOST_SETTINGS.nameservers)
    assert cfg.hostname == "web.grp.team.svc.cluster.local"
    assert rec.events == []  # not creating: no events
    executor.sandbox_config(p, pod_from_api(p), 0, creating=True)
    assert [(e.type, e.reason, e.message) for e in rec.events] == [
        (ev.WARNING, MISSING_CLUSTER_DNS, MISSING_MSG)
    ]
    host_net = pod_json(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")
    assert executor.sandbox_config(host_net, pod_from_api(host_net), 0).hostname == ""


def test_executor_sandbox_config_errors(tmp_path: Path) -> None:
    dns = DNSConfigurer(resolv_conf=str(tmp_path / "missing"))
    executor, _ = _executor(tmp_path, dns)
    p = pod_json()
    with pytest.raises(PodSpecError, match="could not open resolv conf file"):
        executor.sandbox_config(p, pod_from_api(p), 0, creating=True)
    existing = executor.sandbox_config(p, pod_from_api(p), 0)
    assert not existing.HasField("dns_config")  # existing sandbox: logged


def test_executor_without_dns_leaves_the_runtime_default(tmp_path: Path) -> None:
    executor, _ = _executor(tmp_path, None)
    p = pod_json(subdomain="grp", setHostnameAsFQDN=True)
    cfg = executor.sandbox_config(p, pod_from_api(p), 0)
    assert not cfg.HasField("dns_config") and cfg.hostname == "web"
