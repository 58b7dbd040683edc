"""The agent side of the CNI plugin: ADD/DEL/CHECK/STATUS/GC built from IPAM, links, iptables.
Synchronous, for one worker thread; never called on the event loop. Leaves nothing half-made."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from pyroute2.netlink.exceptions import NetlinkError

from net import iptables, links, names
from net.cni import protocol
from net.cni.protocol import CniError, Json, Request
from net.config import NetConf, parse_netconf
from net.ipam import Allocation, IpamError, Store

log = logging.getLogger(__name__)
E_IPAM = 100
E_NETLINK = 101
E_IPTABLES = 102
E_CHECK = 104


class NetworkService:
    """Handles plugin requests against this host. IPAM stores live under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._prepared: set[tuple[str, str, str]] = set()
        self._mtu: int | None = None

    @property
    def mtu(self) -> int:
        if self._mtu is None:
            self._mtu = links.uplink_mtu()
        return self._mtu

    def store(self, conf: NetConf) -> Store:
        key = f"{conf.bridge}-{conf.pod_cidr.replace('/', '_')}"
        return Store(self.data_dir / "ipam" / key, conf.pod_cidr)

    def handle(self, req: Request) -> Json | None:
        """One request; raises CniError with a CNI code on failure."""
        if req.command == "VERSION":
            return protocol.version_result()
        conf = parse_netconf(req.config)
        try:
            return self._dispatch(req, conf)
        except CniError:
            raise
        except IpamError as e:
            raise CniError(E_IPAM, "IP allocation failed", str(e)) from None
        except iptables.IptablesError as e:
            raise CniError(E_IPTABLES, "iptables failed", str(e)) from None
        except (NetlinkError, OSError, RuntimeError) as e:
            raise CniError(E_NETLINK, "network setup failed", f"{type(e).__name__}: {e}") from None

    def _dispatch(self, req: Request, conf: NetConf) -> Json | None:
        if req.command == "ADD":
            return self.add(req, conf)
        if req.command == "DEL":
            self.delete(req.container_id, req.ifname, conf)
        elif req.command == "CHECK":
            self.check(req, conf)
        elif req.command == "STATUS":
            self.status(conf)
        elif req.command == "GC":
            self.gc(req, conf)
        else:
            raise CniError(protocol.E_INVALID_ENV, "invalid CNI_COMMAND", req.command)
        return None

    def prepare(self, conf: NetConf) -> None:
        """The node bridge with the gateway address, masquerade and the hostPort hooks."""
        key = (conf.bridge, conf.pod_cidr, conf.cluster_cidr)
        if key in self._prepared and links.host_link(conf.bridge) is not None:
            return
        links.ensure_bridge(conf.bridge, conf.gateway, conf.prefixlen, self.mtu)
        iptables.ensure_network(conf.bridge, conf.pod_cidr, conf.cluster_cidr)
        self._prepared.add(key)

    def add(self, req: Request, conf: NetConf) -> Json:
        """Build (or re-check, for a repeated ADD) the sandbox's interface; all or nothing."""
        self.prepare(conf)
        pod = names.pod_alias(
            req.args.get("K8S_POD_NAMESPACE", ""), req.args.get("K8S_POD_NAME", "")
        )
        with contextlib.ExitStack() as undo:
            alloc, new = self.store(conf).allocate(req.container_id, req.ifname, pod)
            if new:
                undo.callback(self.store(conf).release, req.container_id, req.ifname)
            host = names.host_veth_name(req.container_id, req.ifname)
            if not self._reusable(host, req):
                links.delete_link(host)
                links.create_veth(host, req.ifname, req.netns, self.mtu)
                undo.callback(links.delete_link, host)
            host_mac = links.attach_host_end(host, conf.bridge, pod)
            pod_mac = links.configure_pod_side(
                req.netns, req.ifname, alloc.ip, conf.prefixlen, conf.gateway
            )
            iptables.remove_hostports(conf.bridge, req.container_id)
            if conf.port_mappings:
                undo.callback(iptables.remove_hostports, conf.bridge, req.container_id)
                iptables.add_hostports(conf.bridge, alloc.ip, req.container_id, conf.port_mappings)
            result = self._result(req, conf, alloc, host, host_mac, pod_mac)
            undo.pop_all()
        log.info("CNI ADD %s %s: %s on %s", pod or "-", req.container_id[:12], alloc.ip, host)
        return result

    def _reusable(self, host: str, req: Request) -> bool:
        """A repeated ADD keeps the veth when both ends are still there."""
        if links.host_link(host) is None:
            return False
        return links.pod_addresses(req.netns, req.ifname) is not None

    def _result(
        self, req: Request, conf: NetConf, alloc: Allocation, host: str, host_mac: str, pod_mac: str
    ) -> Json:
        bridge = links.host_link(conf.bridge) or {}
        result: Json = {
            "cniVersion": req.cni_version,
            "interfaces": [
                {"name": conf.bridge, "mac": bridge.get("mac", "")},
                {"name": host, "mac": host_mac},
                {"name": req.ifname, "mac": pod_mac, "sandbox": req.netns},
            ],
            "ips": [
                {"address": f"{alloc.ip}/{conf.prefixlen}", "gateway": conf.gateway, "interface": 2}
            ],
            "routes": [{"dst": "0.0.0.0/0", "gw": conf.gateway}],
        }
        if conf.dns:
            result["dns"] = conf.dns
        return result

    def delete(self, container_id: str, ifname: str, conf: NetConf) -> None:
        """Remove DNATs, the veth pair and the IP; each step a no-op when already gone."""
        iptables.remove_hostports(conf.bridge, container_id)
        links.delete_link(names.host_veth_name(container_id, ifname))
        released = self.store(conf).release(container_id, ifname)
        log.info("CNI DEL %s: released %s", container_id[:12], released.ip if released else "-")

    def check(self, req: Request, conf: NetConf) -> None:
        alloc = self.store(conf).get(req.container_id, req.ifname)
        if alloc is None:
            raise CniError(
                protocol.E_UNKNOWN_CONTAINER, "no allocation for container", req.container_id
            )
        host = names.host_veth_name(req.container_id, req.ifname)
        link = links.host_link(host)
        if link is None or link["master"] != conf.bridge:
            raise CniError(E_CHECK, "host veth missing or not on the bridge", host)
        addrs = links.pod_addresses(req.netns, req.ifname)
        if addrs is None or (alloc.ip, conf.prefixlen) not in addrs:
            raise CniError(E_CHECK, f"{req.ifname} in the sandbox lacks {alloc.ip}", req.netns)

    def status(self, conf: NetConf) -> None:
        if links.host_link(conf.bridge) is None:
            raise CniError(protocol.E_PLUGIN_NOT_AVAILABLE, "bridge missing", conf.bridge)

    def gc(self, req: Request, conf: NetConf) -> None:
        """CNI 1.1 GC: release every attachment not in cni.dev/valid-attachments."""
        valid = req.config.get("cni.dev/valid-attachments") or []
        keep = {
            (str(a.get("containerID")), str(a.get("ifname"))) for a in valid if isinstance(a, dict)
        }
        for alloc in self.store(conf).all():
            if (alloc.container_id, alloc.ifname) not in keep:
                self.delete(alloc.container_id, alloc.ifname, conf)
