"""Regenerates the checked-in CRI stubs in cri/_gen/ from cri/api.proto (`python -m cri.gen`).
Build-time only: the agent must not import it at run time; nothing edits cri/_gen/ by hand.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PACKAGE_DIR = Path(__file__).resolve().parent
PROTO = PACKAGE_DIR / "api.proto"
GEN_DIR = PACKAGE_DIR / "_gen"

# The proto is compiled as if it lived at cri/_gen/api.proto, so the generated grpc module
# imports its messages as `from cri._gen import api_pb2`.
PROTO_NAME = "cri/_gen/api.proto"

GENERATED_FILES = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py", "api_pb2_grpc.pyi")

_INIT_TEMPLATE = '''\
"""Generated CRI runtime.v1 stubs; do not edit. Regenerate with `python -m cri.gen`.
Only cri/ imports from here; the rest of pykubelet goes through cri.client and cri.api.
"""

GRPCIO_TOOLS_VERSION = "{grpcio_tools}"
MYPY_PROTOBUF_VERSION = "{mypy_protobuf}"
'''


def generator_versions() -> dict[str, str]:
    """Versions of the installed generators (their output differs between versions)."""
    return {
        "grpcio_tools": importlib.metadata.version("grpcio-tools"),
        "mypy_protobuf": importlib.metadata.version("mypy-protobuf"),
    }


def _plugin(name: str) -> str:
    """Path of a protoc plugin installed next to the running interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install the dev extras (mypy-protobuf)")
    return found


def _protoc(proto: Path, tmp: Path, outputs: list[str], *, name: str = PROTO_NAME) -> Path:
    """Run protoc on a copy of `proto` placed at `name`; return the output root."""
    src_root, dst_root = tmp / "src", tmp / "out"
    (src_root / name).parent.mkdir(parents=True)
    (dst_root / name).parent.mkdir(parents=True)
    shutil.copyfile(proto, src_root / name)
    well_known = Path(protoc.__file__).parent / "_proto"
    args = ["grpc_tools.protoc", f"-I{src_root}", f"-I{well_known}"]
    args += [arg.format(out=dst_root) for arg in outputs] + [name]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code} on {proto}")
    return dst_root


def descriptor_set(proto: Path = PROTO, *, name: str = PROTO_NAME) -> bytes:
    """Compile `proto` to a serialized FileDescriptorSet (no source info), for comparisons."""
    with tempfile.TemporaryDirectory(prefix="cri-gen-") as tmp:
        out = _protoc(proto, Path(tmp), ["--descriptor_set_out={out}/set.pb"], name=name)
        return (out / "set.pb").read_bytes()


def generate(out_dir: Path, *, proto: Path = PROTO) -> list[Path]:
    """Compile `proto` into `out_dir` (created if needed); return the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = [
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        "--python_out={out}",
        "--grpc_python_out={out}",
        "--mypy_out={out}",
        "--mypy_grpc_out={out}",
    ]
    written = []
    with tempfile.TemporaryDirectory(prefix="cri-gen-") as tmp:
        dst_root = _protoc(proto, Path(tmp), outputs)
        for file_name in GENERATED_FILES:
            target = out_dir / file_name
            shutil.copyfile(dst_root / Path(PROTO_NAME).parent / file_name, target)
            written.append(target)
    init = out_dir / "__init__.py"
    init.write_text(_INIT_TEMPLATE.format(**generator_versions()))
    written.append(init)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cri.gen", description=__doc__)
    parser.add_argument("--out", type=Path, default=GEN_DIR, help="output directory")
    ns = parser.parse_args(argv)
    for path in generate(ns.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
