"""Images the harness builds locally (pause, busybox, CoreDNS) as docker-archive tars, and their
import. Builds only from local inputs (no registry is reachable) and never touches the system
containerd.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cluster import images_busybox

log = logging.getLogger(__name__)

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
BUSYBOX_IMAGE = "docker.io/library/busybox:1.35"

# Bump when the recipes below change in a way that changes the archives' content.
BUILDER_VERSION = "pykubelet-images/1"
# Every timestamp in the images (file mtimes, config "created", history): 2024-01-01T00:00:00Z.
SOURCE_DATE_EPOCH = 1704067200
SOURCE_DATE = "2024-01-01T00:00:00Z"

PAUSE_SOURCE = Path(__file__).with_name("images") / "pause.c"
BUSYBOX_BINARY = images_busybox.FALLBACK
"""Debian's busybox-static: the fallback when busybox cannot be built from source."""
CFLAGS = ("-static", "-Os", "-Wall", "-Wextra")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KEY_LABEL = "io.pykubelet.build-key"
NAMESPACE = "k8s.io"
TOOLS = {"umoci": "umoci", "skopeo": "skopeo", "gcc": "gcc", "strip": "binutils"}
_STDERR_TAIL = 2000

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"


class ImageError(RuntimeError):
    """A local image could not be built or imported; the message names the image."""


@dataclass(frozen=True)
class ImageArchive:
    """A docker-archive tar in the cache holding one image under its full name."""

    name: str
    path: Path
    key: str


@dataclass(frozen=True)
class Recipe:
    """How to build one image: its inputs (for the cache key), rootfs content and config."""

    name: str
    inputs: Mapping[str, str]
    populate: Callable[[Path, Path], None]  # (rootfs, scratch dir) -> None
    config_args: Sequence[str] = field(default_factory=tuple)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def oci_arch(machine: str | None = None) -> str:
    """The OCI architecture name of this host (x86_64 -> amd64)."""
    m = (machine or platform.machine()).lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(m, m)


def cache_key(
    name: str,
    inputs: Mapping[str, str],
    *,
    builder_version: str = BUILDER_VERSION,
    arch: str | None = None,
) -> str:
    """sha256 over everything an archive's content depends on: name, inputs, builder, arch."""
    doc = {
        "builder": builder_version,
        "image": name,
        "arch": arch or oci_arch(),
        "epoch": SOURCE_DATE_EPOCH,
        "inputs": dict(sorted(inputs.items())),
    }
    return sha256_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


def image_slug(name: str) -> str:
    """A file-name-safe image name: registry.k8s.io/pause:3.10 -> registry.k8s.io_pause_3.10."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name)


def archive_path(cache_dir: Path, name: str, key: str) -> Path:
    return cache_dir / f"{image_slug(name)}-{key[:24]}.tar"


def pause_inputs(source: bytes) -> dict[str, str]:
    return {"pause.c": sha256_bytes(source), "cflags": " ".join(CFLAGS)}


def busybox_inputs(binary_sha256: str) -> dict[str, str]:
    return {
        "busybox": binary_sha256,
        "passwd": sha256_bytes(PASSWD.encode()),
        "group": sha256_bytes(GROUP.encode()),
    }


# --- running tools -----------------------------------------------------------------------------


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _STDERR_TAIL else "..." + text[-_STDERR_TAIL:]


def _run(
    argv: Sequence[str],
    *,
    image: str,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    log.debug("%s: %s", image, " ".join(argv))
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(SOURCE_DATE_EPOCH), LC_ALL="C", **(env or {}))
    try:
        r = subprocess.run(
            list(argv), cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
    except OSError as e:
        raise ImageError(f"{image}: {what} failed: cannot run {argv[0]}: {e}") from e
    if r.returncode != 0:
        raise ImageError(
            f"{image}: {what} failed (exit {r.returncode}): {' '.join(argv)}\n"
            f"{_tail(r.stderr or r.stdout)}"
        )
    return r


def check_tools() -> None:
    missing = [f"{tool} (apt: {pkg})" for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    if missing:
        raise ImageError("local image build needs missing tools: " + ", ".join(missing))


# --- recipes -----------------------------------------------------------------------------------


def _populate_pause(source: Path) -> Callable[[Path, Path], None]:
    def populate(rootfs: Path, scratch: Path) -> None:
        binary = scratch / "pause"
        # Compile from a copy with a fixed name so nothing about the checkout's path can leak in.
        src = scratch / "pause.c"
        shutil.copyfile(source, src)
        _run(
            ["gcc", *CFLAGS, "-o", binary.name, src.name],
            image=PAUSE_IMAGE,
            what="compiling pause.c",
            cwd=scratch,
            env={"TMPDIR": str(scratch)},
        )
        _run(["strip", binary.name], image=PAUSE_IMAGE, what="stripping pause", cwd=scratch)
        shutil.copyfile(binary, rootfs / "pause")
        (rootfs / "pause").chmod(0o755)

    return populate


def file_capability(*caps: int) -> bytes:
    """A `security.capability` xattr value granting `caps` permitted and effective (what
    `setcap cap_x=+ep` writes: VFS_CAP_REVISION_2, the effective flag, two 32-bit words)."""
    permitted = sum(1 << c for c in caps)
    return struct.pack("<IIIII", 0x02000001, permitted & 0xFFFFFFFF, 0, permitted >> 32, 0)


CAP_NET_BIND_SERVICE = 10
NONROOT_PASSWD = "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
COREDNS_USER = "65532:65532"
"""Upstream's image runs as distroless's nonroot with cap_net_bind_service on /coredns."""


def coredns_inputs(binary_sha256: str) -> dict[str, str]:
    return {"coredns": binary_sha256, "user": COREDNS_USER, "caps": "cap_net_bind_service=+ep"}


def _populate_coredns(binary: Path) -> Callable[[Path, Path], None]:
    def populate(rootfs: Path, scratch: Path) -> None:
        target = rootfs / "coredns"
        shutil.copyfile(binary, target)
        target.chmod(0o755)
        os.setxattr(target, "security.capability", file_capability(CAP_NET_BIND_SERVICE))
        (rootfs / "etc").mkdir(mode=0o755)
        (rootfs / "etc" / "passwd").write_text(PASSWD + NONROOT_PASSWD)
        (rootfs / "etc" / "group").write_text(GROUP + "nonroot:x:65532:\n")

    return populate


def coredns_recipe(name: str, binary: Path) -> Recipe:
    """registry.k8s.io/coredns/coredns:<version> as upstream's Dockerfile makes it: /coredns with
    cap_net_bind_service, user 65532, entrypoint /coredns."""
    return Recipe(
        name=name,
        inputs=coredns_inputs(sha256_file(binary)),
        populate=_populate_coredns(binary),
        config_args=(
            "--config.entrypoint",
            "/coredns",
            "--config.user",
            COREDNS_USER,
            "--config.workingdir",
            "/",
            "--config.exposedports",
            "53/tcp",
            "--config.exposedports",
            "53/udp",
        ),
    )


def busybox_applets(listing: str) -> list[str]:
    """Relative paths of the applet links from `busybox --list-full` (minus busybox, linuxrc)."""
    out = []
    for line in listing.splitlines():
        p = line.strip().lstrip("/")
        if "/" not in p or p == "bin/busybox" or ".." in p.split("/"):
            continue
        out.append(p)
    return sorted(set(out))


def _populate_busybox(binary: Path) -> Callable[[Path, Path], None]:
    def populate(rootfs: Path, scratch: Path) -> None:
        for d, mode in (
            ("bin", 0o755),
            ("sbin", 0o755),
            ("usr/bin", 0o755),
            ("usr/sbin", 0o755),
            ("etc", 0o755),
            ("root", 0o700),
            ("tmp", 0o1777),
            ("var", 0o755),
            ("home", 0o755),
        ):
            (rootfs / d).mkdir(parents=True, exist_ok=True)
            (rootfs / d).chmod(mode)
        target = rootfs / "bin" / "busybox"
        shutil.copyfile(binary, target)
        target.chmod(0o755)
        listing = _run(
            [str(target), "--list-full"], image=BUSYBOX_IMAGE, what="listing busybox applets"
        ).stdout
        applets = busybox_applets(listing)
        if "bin/sh" not in applets:
            raise ImageError(f"{BUSYBOX_IMAGE}: {binary} has no sh applet")
        for rel in applets:
            link = rootfs / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            os.link(target, link)
        (rootfs / "etc" / "passwd").write_text(PASSWD)
        (rootfs / "etc" / "group").write_text(GROUP)
        for f in ("passwd", "group"):
            (rootfs / "etc" / f).chmod(0o644)

    return populate


def recipes(*, pause_source: Path = PAUSE_SOURCE, busybox: Path | None = None) -> list[Recipe]:
    """The images every node gets; busybox built from source unless a binary is given."""
    busybox = busybox or images_busybox.binary_for_image()
    return [
        Recipe(
            name=PAUSE_IMAGE,
            inputs=pause_inputs(pause_source.read_bytes()),
            populate=_populate_pause(pause_source),
            config_args=("--config.entrypoint", "/pause", "--config.user", "65535:65535"),
        ),
        Recipe(
            name=BUSYBOX_IMAGE,
            inputs=busybox_inputs(sha256_file(busybox)),
            populate=_populate_busybox(busybox),
            config_args=("--config.cmd", "sh", "--config.env", f"PATH={DEFAULT_PATH}"),
        ),
    ]


# --- building ----------------------------------------------------------------------------------


def _normalize_times(rootfs: Path) -> None:
    """Give every file, link and directory the fixed build time (children before parents)."""
    t = (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH)
    for dirpath, dirnames, filenames in os.walk(rootfs, topdown=False):
        for n in [*filenames, *dirnames]:
            os.utime(os.path.join(dirpath, n), t, follow_symlinks=False)
        os.utime(dirpath, t, follow_symlinks=False)


def _skopeo_env(work: Path) -> dict[str, str]:
    """Keep skopeo's blob-info cache in our scratch dir instead of /var/lib/containers (its
    default for root): containers/image treats a non-zero _CONTAINERS_ROOTLESS_UID as rootless
    and then puts the cache under XDG_DATA_HOME. Nothing else in an oci: -> docker-archive: copy
    depends on it."""
    return {
        "_CONTAINERS_ROOTLESS_UID": "65534",
        "XDG_DATA_HOME": str(work / "xdg"),
        "XDG_RUNTIME_DIR": str(work / "xdg-run"),
        "TMPDIR": str(work / "scratch"),
    }


def _build(recipe: Recipe, out: Path, work: Path) -> None:
    name = recipe.name
    layout = work / "oci"
    bundle = work / "bundle"
    scratch = work / "scratch"
    scratch.mkdir()
    ref = f"{layout}:img"
    history = ["--history.created", SOURCE_DATE, "--history.created_by", BUILDER_VERSION]
    _run(["umoci", "init", "--layout", str(layout)], image=name, what="umoci init")
    _run(["umoci", "new", "--image", ref], image=name, what="umoci new")
    _run(["umoci", "unpack", "--image", ref, str(bundle)], image=name, what="umoci unpack")
    rootfs = bundle / "rootfs"
    recipe.populate(rootfs, scratch)
    _normalize_times(rootfs)
    _run(
        ["umoci", "repack", *history, "--image", ref, str(bundle)], image=name, what="umoci repack"
    )
    _run(
        [
            "umoci",
            "config",
            *history,
            "--image",
            ref,
            "--created",
            SOURCE_DATE,
            "--architecture",
            oci_arch(),
            "--os",
            "linux",
            *recipe.config_args,
        ],
        image=name,
        what="umoci config",
    )
    _run(["umoci", "gc", "--layout", str(layout)], image=name, what="umoci gc")
    tmp_out = work / "image.tar"
    _run(
        [
            "skopeo",
            "--insecure-policy",
            "--tmpdir",
            str(scratch),
            "copy",
            "--quiet",
            f"oci:{ref}",
            f"docker-archive:{tmp_out}:{name}",
        ],
        image=name,
        what="skopeo copy to docker-archive",
        env=_skopeo_env(work),
    )
    os.replace(tmp_out, out)


def build_images(
    cache_dir: Path, *, pause_source: Path = PAUSE_SOURCE, busybox: Path | None = None
) -> list[ImageArchive]:
    """Build the pause and busybox archives into cache_dir, reusing any with the same key."""
    return [
        build_archive(recipe, cache_dir)
        for recipe in recipes(pause_source=pause_source, busybox=busybox)
    ]


def build_archive(recipe: Recipe, cache_dir: Path) -> ImageArchive:
    """One recipe's archive in cache_dir, built unless one with the same key is there."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(recipe.name, recipe.inputs)
    path = archive_path(cache_dir, recipe.name, key)
    if path.is_file():
        log.info("image %s: cached %s", recipe.name, path.name)
    else:
        check_tools()
        log.info("image %s: building %s", recipe.name, path.name)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
        try:
            _build(recipe, path, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _prune(cache_dir, recipe.name, keep=path)
    return ImageArchive(name=recipe.name, path=path, key=key)


def _prune(cache_dir: Path, name: str, *, keep: Path) -> None:
    """Drop archives of the same image built from older inputs."""
    for old in cache_dir.glob(f"{image_slug(name)}-*.tar"):
        if old != keep:
            log.info("image %s: removing stale %s", name, old.name)
            old.unlink(missing_ok=True)


# --- importing ---------------------------------------------------------------------------------


def _ctr(ctr: str, address: Path, *args: str) -> list[str]:
    return [ctr, "--address", str(address), "-n", NAMESPACE, *args]


def key_filter(name: str, key: str) -> str:
    """A containerd image filter matching `name` only when it carries our build-key label."""
    return f'name=="{name}",labels."{KEY_LABEL}"=="{key}"'


def import_images(*, ctr: str = "ctr", address: Path, archives: list[ImageArchive]) -> None:
    """Import each archive into namespace k8s.io unless containerd holds it with the same key."""
    for a in archives:
        listed = _run(
            _ctr(ctr, address, "images", "ls", "-q", key_filter(a.name, a.key)),
            image=a.name,
            what="listing images",
        ).stdout.split()
        if a.name in listed:
            log.info("image %s: already in containerd (key %s)", a.name, a.key[:12])
            continue
        present = _run(
            _ctr(ctr, address, "images", "ls", "-q", f'name=="{a.name}"'),
            image=a.name,
            what="listing images",
        ).stdout.split()
        if a.name in present:
            log.warning(
                "image %s: replacing a different build; CRI may serve the old one until "
                "containerd restarts",
                a.name,
            )
        log.info("image %s: importing %s", a.name, a.path.name)
        _run(
            _ctr(ctr, address, "images", "import", str(a.path)),
            image=a.name,
            what=f"ctr images import {a.path}",
        )
        _run(
            _ctr(ctr, address, "images", "label", a.name, f"{KEY_LABEL}={a.key}"),
            image=a.name,
            what="labelling the imported image",
        )
        listed = _run(
            _ctr(ctr, address, "images", "ls", "-q", key_filter(a.name, a.key)),
            image=a.name,
            what="listing images",
        ).stdout.split()
        if a.name not in listed:
            raise ImageError(f"{a.name}: not listed by containerd after importing {a.path}")
