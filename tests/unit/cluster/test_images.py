"""Unit tests of the local image builder's cache keys, cache reuse and import decisions.
Runs no umoci, skopeo, gcc or ctr: the tool runner is replaced; needs no root.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cluster import images
from cluster.images import ImageArchive, ImageError


def test_names() -> None:
    assert images.PAUSE_IMAGE == "registry.k8s.io/pause:3.10"
    assert images.BUSYBOX_IMAGE == "docker.io/library/busybox:1.35"


def test_pause_source_is_shipped() -> None:
    text = images.PAUSE_SOURCE.read_text()
    assert "SIGTERM" in text and "SIGCHLD" in text and "pause()" in text


def test_cache_key_is_deterministic_and_order_free() -> None:
    a = images.cache_key("n", {"x": "1", "y": "2"}, arch="amd64")
    b = images.cache_key("n", {"y": "2", "x": "1"}, arch="amd64")
    assert a == b
    assert len(a) == 64
    int(a, 16)


@pytest.mark.parametrize(
    "change",
    [
        {"name": "other"},
        {"inputs": {"x": "changed"}},
        {"inputs": {"x": "1", "extra": "2"}},
        {"builder_version": "pykubelet-images/999"},
        {"arch": "arm64"},
    ],
)
def test_cache_key_changes_with_each_input(change: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "name": "n",
        "inputs": {"x": "1"},
        "builder_version": images.BUILDER_VERSION,
        "arch": "amd64",
    }
    changed = {**base, **change}

    def key(d: dict[str, Any]) -> str:
        return images.cache_key(
            d["name"], d["inputs"], builder_version=d["builder_version"], arch=d["arch"]
        )

    assert key(base) != key(changed)


def test_recipe_inputs_follow_their_sources() -> None:
    assert images.pause_inputs(b"a") == images.pause_inputs(b"a")
    assert images.pause_inputs(b"a") != images.pause_inputs(b"b")
    assert images.busybox_inputs("0" * 64) != images.busybox_inputs("1" * 64)


def test_oci_arch() -> None:
    assert images.oci_arch("x86_64") == "amd64"
    assert images.oci_arch("aarch64") == "arm64"


def test_archive_path(tmp_path: Path) -> None:
    p = images.archive_path(tmp_path, images.PAUSE_IMAGE, "ab" * 32)
    assert p.parent == tmp_path
    assert p.name == "registry.k8s.io_pause_3.10-" + ("ab" * 12) + ".tar"
    assert "/" not in images.image_slug(images.BUSYBOX_IMAGE)
    assert ":" not in images.image_slug(images.BUSYBOX_IMAGE)


def test_busybox_applets() -> None:
    listing = "usr/bin/[\nlinuxrc\nbin/busybox\nbin/sh\n/sbin/ifconfig\nbin/sh\nbin/../x\n"
    assert images.busybox_applets(listing) == ["bin/sh", "sbin/ifconfig", "usr/bin/["]


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "pause.c"
    src.write_text("int main(void) { return 0; }\n")
    bb = tmp_path / "busybox"
    bb.write_bytes(b"\x7fELF fake busybox")
    return src, bb


def no_tools(*args: object, **kwargs: object) -> Any:
    raise AssertionError("a tool was run")


def test_build_images_reuses_cache(
    tmp_path: Path, inputs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, bb = inputs
    cache = tmp_path / "cache"
    cache.mkdir()
    recipes = images.recipes(pause_source=src, busybox=bb)
    for r in recipes:
        key = images.cache_key(r.name, r.inputs)
        images.archive_path(cache, r.name, key).write_bytes(b"cached " + r.name.encode())
    monkeypatch.setattr(images, "_run", no_tools)
    monkeypatch.setattr(images, "_build", no_tools)
    monkeypatch.setattr(images, "check_tools", no_tools)
    got = images.build_images(cache, pause_source=src, busybox=bb)
    assert [a.name for a in got] == [images.PAUSE_IMAGE, images.BUSYBOX_IMAGE]
    for a in got:
        assert a.path.read_bytes() == b"cached " + a.name.encode()
        assert a.key == images.cache_key(
            a.name,
            images.recipes(pause_source=src, busybox=bb)[
                0 if a.name == images.PAUSE_IMAGE else 1
            ].inputs,
        )


def test_build_images_rebuilds_on_change_and_prunes(
    tmp_path: Path, inputs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, bb = inputs
    cache = tmp_path / "cache"
    built: list[str] = []

    def fake_build(recipe: images.Recipe, out: Path, work: Path) -> None:
        assert work.parent == cache and work.is_dir()
        built.append(recipe.name)
        out.write_bytes(recipe.name.encode())

    monkeypatch.setattr(images, "_build", fake_build)
    monkeypatch.setattr(images, "check_tools", lambda: None)
    first = images.build_images(cache, pause_source=src, busybox=bb)
    assert built == [images.PAUSE_IMAGE, images.BUSYBOX_IMAGE]
    again = images.build_images(cache, pause_source=src, busybox=bb)
    assert again == first
    assert len(built) == 2

    src.write_text("int main(void) { return 1; }\n")
    third = images.build_images(cache, pause_source=src, busybox=bb)
    assert built[2:] == [images.PAUSE_IMAGE]
    assert third[0].key != first[0].key
    assert third[1] == first[1]
    assert not first[0].path.exists()
    assert sorted(p.name for p in cache.iterdir()) == sorted(a.path.name for a in third)


def test_build_failure_leaves_no_archive_or_scratch(
    tmp_path: Path, inputs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, bb = inputs
    cache = tmp_path / "cache"

    def failing(recipe: images.Recipe, out: Path, work: Path) -> None:
        (work / "junk").write_text("x")
        raise ImageError(f"{recipe.name}: boom")

    monkeypatch.setattr(images, "_build", failing)
    monkeypatch.setattr(images, "check_tools", lambda: None)
    with pytest.raises(ImageError, match="pause"):
        images.build_images(cache, pause_source=src, busybox=bb)
    assert list(cache.iterdir()) == []


def test_run_error_names_image_and_stderr_tail() -> None:
    with pytest.raises(ImageError) as e:
        images._run(
            ["sh", "-c", "echo first >&2; echo last-line >&2; exit 3"],
            image="example/img:1",
            what="doing a thing",
        )
    msg = str(e.value)
    assert "example/img:1" in msg and "doing a thing" in msg and "exit 3" in msg
    assert "last-line" in msg


def test_run_missing_binary() -> None:
    with pytest.raises(ImageError, match=r"example/img:1.*cannot run"):
        images._run(["/nonexistent/tool"], image="example/img:1", what="x")


class FakeCtr:
    """Stands in for `ctr`: remembers which names carry which build-key label."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.calls.append(argv)
        assert argv[:5] == ["ctr", "--address", "/x.sock", "-n", "k8s.io"]
        cmd = argv[5:]
        out = ""
        if cmd[:3] == ["images", "ls", "-q"]:
            name = cmd[3].split('"')[1]
            want_key = cmd[3].split("==")[-1].strip('"') if "labels." in cmd[3] else None
            if name in self.labels and (want_key is None or self.labels[name] == want_key):
                out = name + "\n"
        elif cmd[:2] == ["images", "import"]:
            self.labels.setdefault(Path(cmd[2]).stem, "")
        elif cmd[:2] == ["images", "label"]:
            self.labels[cmd[2]] = cmd[3].split("=", 1)[1]
        return subprocess.CompletedProcess(argv, 0, out, "")


def test_import_skips_same_key_and_imports_others(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCtr({"a": "k1", "b": "old"})
    monkeypatch.setattr(images, "_run", fake)
    archives = [
        ImageArchive(name="a", path=Path("/cache/a.tar"), key="k1"),
        ImageArchive(name="b", path=Path("/cache/b.tar"), key="k2"),
        ImageArchive(name="c", path=Path("/cache/c.tar"), key="k3"),
    ]
    images.import_images(address=Path("/x.sock"), archives=archives)
    imported = [c[7] for c in fake.calls if c[5:7] == ["images", "import"]]
    assert imported == ["/cache/b.tar", "/cache/c.tar"]
    assert fake.labels == {"a": "k1", "b": "k2", "c": "k3"}


def test_key_filter() -> None:
    f = images.key_filter("registry.k8s.io/pause:3.10", "abc")
    assert f == 'name=="registry.k8s.io/pause:3.10",labels."io.pykubelet.build-key"=="abc"'
