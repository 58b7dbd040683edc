"""Kubeconfig files for the local cluster's clients (admin, controllers, nodes, proxy).
Renders and writes YAML only; knows nothing of how certificates are made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def render(*, server: str, ca_file: Path, cert_file: Path, key_file: Path, user: str) -> str:
    """A one-context kubeconfig that authenticates with a client certificate."""
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "pykubelet",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate": str(cert_file), "client-key": str(key_file)},
            }
        ],
        "contexts": [{"name": "pykubelet", "context": {"cluster": "pykubelet", "user": user}}],
        "current-context": "pykubelet",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)
