"""Generated CRI runtime.v1 stubs; do not edit. Regenerate with `python -m cri.gen`.
Only cri/ imports from here; the rest of pykubelet goes through cri.client and cri.api.
"""

GRPCIO_TOOLS_VERSION = "1.85.1"
MYPY_PROTOBUF_VERSION = "5.1.0"
