"""The checked-in stubs in cri/_gen/ are what `python -m cri.gen` makes from cri/api.proto now.
Fails when api.proto was edited without regenerating (run `python -m cri.gen` and commit).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from cri import gen
from cri._gen import GRPCIO_TOOLS_VERSION, MYPY_PROTOBUF_VERSION, api_pb2

REGENERATE = "cri/_gen is stale: run `python -m cri.gen` and commit the result"


def _drop_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    """protoc fills json_name in descriptor sets but not in the descriptor embedded in _pb2.py."""
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _drop_json_names(message.nested_type)


def test_embedded_descriptor_matches_proto() -> None:
    """Version-independent: the schema inside api_pb2.py is the one api.proto compiles to."""
    fresh = descriptor_pb2.FileDescriptorSet.FromString(gen.descriptor_set())
    (fresh_file,) = fresh.file
    _drop_json_names(fresh_file.message_type)
    checked_in = descriptor_pb2.FileDescriptorProto.FromString(api_pb2.DESCRIPTOR.serialized_pb)
    assert checked_in == fresh_file, REGENERATE


def test_checked_in_stubs_are_byte_identical(tmp_path: Path) -> None:
    versions = gen.generator_versions()
    recorded = {"grpcio_tools": GRPCIO_TOOLS_VERSION, "mypy_protobuf": MYPY_PROTOBUF_VERSION}
    written = gen.generate(tmp_path)
    stale = [
        path.name for path in written if path.read_bytes() != (gen.GEN_DIR / path.name).read_bytes()
    ]
    if stale and versions != recorded:
        pytest.skip(
            f"stubs were generated with {recorded}, installed generators are {versions}; "
            "exact comparison skipped (the descriptor test still guards the schema)"
        )
    assert not stale, f"{REGENERATE} (differs: {', '.join(stale)})"
    assert sorted(p.name for p in gen.GEN_DIR.iterdir() if p.is_file()) == sorted(
        p.name for p in written
    ), "unexpected files in cri/_gen"
