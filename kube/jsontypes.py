"""The one definition of JSON object types where Kubernetes objects enter and leave as JSON
(apiserver bodies, pod specs before decoding). Typed models take over past that edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JsonObject = dict[str, Any]
"""A JSON object as decoded from the wire (mutable: request bodies are built in it)."""

JsonMap = Mapping[str, Any]
"""A JSON object only read (a pod as received, one of its sub-objects)."""
