"""The node agent's configuration: the KubeletConfiguration file and its drop-ins, the kubelet
command line, their checks. Owns settings and their validation only; starts nothing and reads no
file but the ones named.
"""

from __future__ import annotations

from kube.units import format_duration, parse_duration, parse_percentage, parse_quantity
from kubelet.config.decode import from_dict, load_file, loads, to_dict, validate, verbosity
from kubelet.config.errors import ConfigError
from kubelet.config.flags import RunConfig, add_run_flags, load, node_name, normalize_argv
from kubelet.config.labels import (
    Taint,
    check_label_key,
    check_label_value,
    parse_labels,
    parse_node_ips,
    parse_taint,
    parse_taints,
)
from kubelet.config.model import (
    API_VERSION,
    KIND,
    AnonymousAuthentication,
    Authentication,
    Authorization,
    KubeletConfiguration,
    WebhookAuthentication,
    WebhookAuthorization,
    X509Authentication,
)

__all__ = [
    "API_VERSION",
    "KIND",
    "AnonymousAuthentication",
    "Authentication",
    "Authorization",
    "ConfigError",
    "KubeletConfiguration",
    "RunConfig",
    "Taint",
    "WebhookAuthentication",
    "WebhookAuthorization",
    "X509Authentication",
    "add_run_flags",
    "check_label_key",
    "check_label_value",
    "format_duration",
    "from_dict",
    "load",
    "load_file",
    "loads",
    "node_name",
    "normalize_argv",
    "parse_duration",
    "parse_labels",
    "parse_node_ips",
    "parse_percentage",
    "parse_quantity",
    "parse_taint",
    "parse_taints",
    "to_dict",
    "validate",
    "verbosity",
]
