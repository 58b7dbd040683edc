"""cri/api.proto against the published runtime.v1 api.proto: every service, method, message,
field and enum value we declare exists upstream with the same name, number and type.
Skipped when the upstream file is not on this machine (set CRI_API_PROTO to point at it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from cri import gen

UPSTREAM_VERSION = "v0.36.3"
_REL = Path("k8s.io") / f"cri-api@{UPSTREAM_VERSION}" / "pkg/apis/runtime/v1/api.proto"


def _upstream_path() -> Path | None:
    candidates = [os.environ.get("CRI_API_PROTO", "")]
    gomodcache = os.environ.get("GOMODCACHE") or str(Path.home() / "go" / "pkg" / "mod")
    candidates.append(str(Path(gomodcache) / _REL))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _compile(proto: Path) -> descriptor_pb2.FileDescriptorProto:
    fds = descriptor_pb2.FileDescriptorSet.FromString(gen.descriptor_set(proto, name="api.proto"))
    (file,) = fds.file
    return file


def _messages(
    prefix: str, messages: Iterator[descriptor_pb2.DescriptorProto]
) -> Iterator[tuple[str, descriptor_pb2.DescriptorProto]]:
    for message in messages:
        name = f"{prefix}.{message.name}"
        yield name, message
        yield from _messages(name, iter(message.nested_type))


def _enums(
    file: descriptor_pb2.FileDescriptorProto,
) -> dict[str, descriptor_pb2.EnumDescriptorProto]:
    enums = {f".{file.package}.{e.name}": e for e in file.enum_type}
    for name, message in _messages(f".{file.package}", iter(file.message_type)):
        enums.update({f"{name}.{e.name}": e for e in message.enum_type})
    return enums


@pytest.fixture(scope="module")
def files() -> tuple[descriptor_pb2.FileDescriptorProto, descriptor_pb2.FileDescriptorProto]:
    upstream = _upstream_path()
    if upstream is None:
        pytest.skip(f"upstream cri-api {UPSTREAM_VERSION} api.proto not found (set CRI_API_PROTO)")
    return _compile(gen.PROTO), _compile(upstream)


Files = tuple[descriptor_pb2.FileDescriptorProto, descriptor_pb2.FileDescriptorProto]


def test_package_and_services(files: Files) -> None:
    ours, upstream = files
    assert ours.package == upstream.package == "runtime.v1"
    theirs = {s.name: {m.name: m for m in s.method} for s in upstream.service}
    for service in ours.service:
        assert service.name in theirs
        for method in service.method:
            other = theirs[service.name].get(method.name)
            assert other is not None, f"{service.name}.{method.name} is not upstream"
            assert (method.input_type, method.output_type) == (other.input_type, other.output_type)
            assert (method.client_streaming, method.server_streaming) == (
                other.client_streaming,
                other.server_streaming,
            )


def test_messages_and_fields(files: Files) -> None:
    ours, upstream = files
    theirs = dict(_messages(f".{upstream.package}", iter(upstream.message_type)))
    for name, message in _messages(f".{ours.package}", iter(ours.message_type)):
        other = theirs.get(name)
        assert other is not None, f"message {name} is not upstream"
        their_fields = {f.number: f for f in other.field}
        for field in message.field:
            up = their_fields.get(field.number)
            assert up is not None, f"{name}.{field.name} = {field.number} is not upstream"
            assert (field.name, field.type, field.label, field.type_name) == (
                up.name,
                up.type,
                up.label,
                up.type_name,
            ), f"{name}.{field.name} differs from upstream"
        declared = {f.number for f in message.field}
        for r in message.reserved_range:
            declared.update(range(r.start, r.end))
        missing = sorted(set(their_fields) - declared)
        assert not missing, f"{name}: upstream fields {missing} neither declared nor reserved"


def test_enums_complete_and_equal(files: Files) -> None:
    ours, upstream = files
    theirs = _enums(upstream)
    for name, enum in _enums(ours).items():
        assert name in theirs, f"enum {name} is not upstream"
        mine = {v.name: v.number for v in enum.value}
        assert mine == {v.name: v.number for v in theirs[name].value}, f"enum {name} differs"
