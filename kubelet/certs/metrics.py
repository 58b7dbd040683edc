"""The certificate managers' metrics: TTL and renewal errors of the client and serving
certificates (+Inf until a certificate is in use). Declarations only, in the agent's registry.
"""

from __future__ import annotations

from prometheus_client import Gauge

from kubelet.metrics import REGISTRY, PlainCounter

SERVER_CERT_TTL = Gauge(
    "kubelet_certificate_manager_server_ttl_seconds",
    "Gauge of the shortest TTL (time-to-live) of the Kubelet's serving certificate. The value is "
    "in seconds until certificate expiry (negative if already expired). If serving certificate "
    "is invalid or unused, the value will be +INF.",
    registry=REGISTRY,
)
SERVER_CERT_TTL.set(float("inf"))
CLIENT_CERT_TTL = Gauge(
    "kubelet_certificate_manager_client_ttl_seconds",
    "Gauge of the TTL (time-to-live) of the Kubelet's client certificate. The value is in seconds "
    "until certificate expiry (negative if already expired). If client certificate is invalid or "
    "unused, the value will be +INF.",
    registry=REGISTRY,
)
CLIENT_CERT_TTL.set(float("inf"))


SERVER_RENEW_ERRORS = PlainCounter(
    "kubelet_server_expiration_renew_errors", "Counter of certificate renewal errors.", REGISTRY
)
CLIENT_RENEW_ERRORS = PlainCounter(
    "kubelet_certificate_manager_client_expiration_renew_errors",
    "Counter of certificate renewal errors.",
    REGISTRY,
)
