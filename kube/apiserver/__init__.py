"""The one place that talks to the kube-apiserver: requests as data, a thin httpx client, watches.
Other packages import from here; nothing outside this package opens an apiserver connection.
"""

from kube.apiserver.client import ApiClient
from kube.apiserver.errors import (
    AlreadyExists,
    ApiConnectionError,
    ApiError,
    Conflict,
    Forbidden,
    Gone,
    JsonObject,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
)
from kube.apiserver.informer import (
    SYNC,
    InformerEvent,
    Reflector,
    Store,
    list_then_watch,
    watch_forever,
)
from kube.apiserver.kubeconfig import Credentials, KubeconfigError, load_kubeconfig, ssl_context
from kube.apiserver.requests import (
    CONFIGMAPS,
    EVENTS,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    SECRETS,
    ListResult,
    PatchType,
    Preconditions,
    Resource,
    WatchEvent,
)
from kube.apiserver.retry import RetryPolicy

__all__ = [
    "CONFIGMAPS",
    "EVENTS",
    "LEASES",
    "NAMESPACES",
    "NODES",
    "PODS",
    "SECRETS",
    "SYNC",
    "AlreadyExists",
    "ApiClient",
    "ApiConnectionError",
    "ApiError",
    "Conflict",
    "Credentials",
    "Forbidden",
    "Gone",
    "InformerEvent",
    "JsonObject",
    "KubeconfigError",
    "ListResult",
    "NotFound",
    "PatchType",
    "Preconditions",
    "Reflector",
    "Resource",
    "RetryPolicy",
    "ServerError",
    "Store",
    "TooManyRequests",
    "Unauthorized",
    "WatchEvent",
    "list_then_watch",
    "load_kubeconfig",
    "ssl_context",
    "watch_forever",
]
