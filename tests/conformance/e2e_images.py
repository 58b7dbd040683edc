"""The e2e test images the [NodeConformance] tests run (agnhost, busybox, pause, nonewprivs, ...),
built locally under the exact names `e2e.test --list-images` prints, with cluster.images.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cluster import images as base

log = logging.getLogger(__name__)

NNP_SOURCE = Path(__file__).parent / "src" / "nnp.c"
# Tools from the host copied (with their shared libraries) into the agnhost image: the tests run
# `curl` (lifecycle hooks, pod networking), `nc -u` (UDP node-to-pod checks; busybox nc has no
# -u) and `/bin/bash` (probe tests). Debian packages: curl, netcat-openbsd, bash.
AGNHOST_TOOLS = ("/usr/bin/curl", "/usr/bin/nc.openbsd", "/bin/bash")
# /bin/sh of the agnhost and busybox images is bash, not Debian's busybox 1.35 sh: that one runs
# its own applets before anything on PATH (`sh -c "nc -u ..."` never reaches the real nc) and,
# like dash, drops environment variables whose names are not shell identifiers (envFrom keys
# such as `data-1`), which upstream's busybox 1.37 and Alpine images pass on to `env`.
SHELL_TOOLS = ("/bin/bash",)
# glibc-dns-testing is a Debian image upstream: its test runs `hostname -f` through glibc.
GLIBC_TOOLS = ("/bin/dash", "/bin/hostname")
NSSWITCH = "hosts: files dns\n"
AGNHOST_USERS = (
    "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n",
    "group-defined-in-image:x:50000:user-defined-in-image\nuser-defined-in-image:x:1000:\n",
)
NONROOT_USER = "1234"
LAYOUT = "applets-in-bin"
"""Part of the busybox-based images' cache key: bump when their file layout changes."""
# What agnhost's fake-registry-server must serve (its images.txt: `pause 3.10.2 testing`).
REGISTRY_REPO, REGISTRY_TAG = "pause", "testing"


class ImageListError(RuntimeError):
    """`e2e.test --list-images` lacks an image a recipe builds (the binary's version moved)."""


@dataclass(frozen=True)
class Wanted:
    """One image the selected tests need: the repository path it is known by, and why."""

    repository: str  # e.g. registry.k8s.io/e2e-test-images/agnhost
    kind: str  # recipe kind: agnhost, busybox, pause, nonewprivs, nonroot, glibc-shell
    why: str
    tag_prefix: str = ""  # pick the listed tag starting with this (agnhost has two tags)


# The images [NodeConformance] tests (minus Serial/Slow/Flaky) start successfully. Images a test
# expects to FAIL pulling (invalid.registry.k8s.io/..., the private-registry pause:testing) are
# never built. nginx only serves the [Slow] back-off test and is left out.
WANTED: tuple[Wanted, ...] = (
    Wanted("registry.k8s.io/e2e-test-images/agnhost", "agnhost", "most tests", "2.6"),
    Wanted(
        "registry.k8s.io/e2e-test-images/agnhost", "agnhost", "pod lifecycle (AgnhostPrev)", "2.5"
    ),
    Wanted("registry.k8s.io/e2e-test-images/busybox", "busybox", "most tests"),
    Wanted("registry.k8s.io/pause", "pause", "pods, sandboxes"),
    Wanted("registry.k8s.io/e2e-test-images/nonewprivs", "nonewprivs", "allowPrivilegeEscalation"),
    Wanted("registry.k8s.io/e2e-test-images/nonroot", "nonroot", "runAsNonRoot with image user"),
    Wanted("registry.k8s.io/e2e-test-images/glibc-dns-testing", "glibc-shell", "hostnameOverride"),
)


def parse_image_list(text: str) -> list[str]:
    """Image names from `e2e.test --list-images` output (one per line; log noise ignored)."""
    names = []
    for line in text.splitlines():
        line = line.strip()
        if re.fullmatch(r"[a-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._-]+)+:[A-Za-z0-9._-]+", line):
            names.append(line)
    return names


def select_images(listed: Sequence[str], wanted: Iterable[Wanted] = WANTED) -> dict[str, Wanted]:
    """Map each wanted image to the exact name the list prints; raises when one is absent."""
    out: dict[str, Wanted] = {}
    for w in wanted:
        matches = [
            n
            for n in listed
            if n.rsplit(":", 1)[0] == w.repository and n.rsplit(":", 1)[1].startswith(w.tag_prefix)
        ]
        if not matches:
            raise ImageListError(
                f"e2e.test --list-images has no {w.repository}:{w.tag_prefix}* (needed for {w.why})"
            )
        out[sorted(matches)[-1]] = w
    return out


def ldd_paths(output: str) -> list[str]:
    """Absolute library paths from `ldd` output (the loader included, vdso skipped)."""
    paths = []
    for line in output.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            paths.append(m.group(1))
    return sorted(set(paths))


def _ldd(binary: str) -> list[str]:
    r = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
    if r.returncode != 0:  # a static binary: nothing to copy
        return []
    return ldd_paths(r.stdout)


def tool_files(tools: Sequence[str] = AGNHOST_TOOLS) -> list[str]:
    """Every host file the agnhost image copies for its tools (binaries and their libraries)."""
    missing = [t for t in tools if not Path(t).is_file()]
    if missing:
        raise base.ImageError(
            f"test images need host tools {missing} (apt: curl netcat-openbsd bash dash hostname)"
        )
    files = set(tools)
    for t in tools:
        files.update(_ldd(t))
    return sorted(files)


def _copy_host_file(rootfs: Path, path: str) -> None:
    target = rootfs / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():  # e.g. a busybox applet of the same name
        target.unlink()
    shutil.copyfile(os.path.realpath(path), target)
    target.chmod(0o755)


def _append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def _busybox_then(
    extra: Callable[[Path, Path], None], busybox: Path = base.BUSYBOX_BINARY
) -> Callable[[Path, Path], None]:
    populate_busybox = base._populate_busybox(busybox)  # the harness's busybox rootfs recipe

    def populate(rootfs: Path, scratch: Path) -> None:
        populate_busybox(rootfs, scratch)
        _applets_in_bin(rootfs)
        extra(rootfs, scratch)

    return populate


def _applets_in_bin(rootfs: Path) -> None:
    """Every applet also under /bin, as in the upstream busybox images (tests exec
    /bin/sysctl; Debian's busybox lists it under /sbin)."""
    target = rootfs / "bin" / "busybox"
    for d in ("sbin", "usr/bin", "usr/sbin"):
        for applet in sorted((rootfs / d).iterdir()):
            link = rootfs / "bin" / applet.name
            if not link.exists() and applet.samefile(target):
                os.link(target, link)


def porter_files(k8s_source: Path) -> list[Path]:
    """The TLS pair agnhost's image carries at / (netexec --tls-cert-file /localhost.crt)."""
    d = k8s_source / "test" / "images" / "agnhost" / "porter"
    files = [d / "localhost.crt", d / "localhost.key"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise base.ImageError(f"agnhost image: missing {missing} in the k8s.io/kubernetes module")
    return files


def _agnhost_extra(
    agnhost: Path, files: Sequence[str], porter: Sequence[Path]
) -> Callable[[Path, Path], None]:
    def extra(rootfs: Path, scratch: Path) -> None:
        for f in files:
            _copy_host_file(rootfs, f)
        for p in porter:
            shutil.copyfile(p, rootfs / p.name)
            (rootfs / p.name).chmod(0o644)
        nc = rootfs / "usr" / "bin" / "nc"
        if nc.exists() or nc.is_symlink():
            nc.unlink()
        nc.parent.mkdir(parents=True, exist_ok=True)
        os.symlink("nc.openbsd", nc)
        for name, target in (("nc", "/usr/bin/nc.openbsd"), ("sh", "bash")):
            link = rootfs / "bin" / name  # busybox's applets otherwise
            if link.exists() or link.is_symlink():
                link.unlink()
            os.symlink(target, link)
        shutil.copyfile(agnhost, rootfs / "agnhost")
        (rootfs / "agnhost").chmod(0o755)
        os.symlink("agnhost", rootfs / "agnhost-2")
        (rootfs / "uploads").mkdir(mode=0o755)
        (rootfs / "home" / "user-defined-in-image").mkdir(mode=0o755)
        _append(rootfs / "etc" / "passwd", AGNHOST_USERS[0])
        _append(rootfs / "etc" / "group", AGNHOST_USERS[1])

    return extra


def registry_files(layout: Path, repo: str, tag: str) -> dict[str, Path]:
    """The files agnhost's fake-registry-server serves for `repo:tag`, from an OCI image layout
    holding one image: {path under /var/registry: source file}. Blobs and manifests live at
    <repo>/{blobs,manifests}/sha256/<2 hex>/<hash>/data; the tag file holds the manifest digest."""
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads(_blob(layout, manifest_digest).read_text())
    out = {f"{repo}/manifests/{_digest_path(manifest_digest)}": _blob(layout, manifest_digest)}
    for d in [manifest["config"]["digest"], *(lay["digest"] for lay in manifest["layers"])]:
        out[f"{repo}/blobs/{_digest_path(d)}"] = _blob(layout, d)
    return out


def _digest_path(digest: str) -> str:
    algo, _, hexa = digest.partition(":")
    return f"{algo}/{hexa[:2]}/{hexa}/data"


def _blob(layout: Path, digest: str) -> Path:
    algo, _, hexa = digest.partition(":")
    return layout / "blobs" / algo / hexa


def _registry_extra(image: base.ImageArchive, repo: str, tag: str) -> Callable[[Path, Path], None]:
    """Fill /var/registry with one image (pause, as `<repo>:<tag>`), what the private-registry
    pull tests ask the in-cluster fake registry for; upstream downloads it at image build time."""

    def extra(rootfs: Path, scratch: Path) -> None:
        layout = scratch / "registry-oci"
        (scratch / "skopeo" / "scratch").mkdir(parents=True, exist_ok=True)
        base._run(
            [
                "skopeo",
                "--insecure-policy",
                "--tmpdir",
                str(scratch),
                "copy",
                "--quiet",
                f"docker-archive:{image.path}",
                f"oci:{layout}:{tag}",
            ],
            image=image.name,
            what="skopeo copy to an OCI layout for the fake registry",
            env=base._skopeo_env(scratch / "skopeo"),
        )
        top = rootfs / "var" / "registry"
        files = registry_files(layout, repo, tag)
        for rel, src in files.items():
            (top / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, top / rel)
        manifest = next(r for r in files if "/manifests/" in r)
        digest = "sha256:" + manifest.split("/")[-2]
        (top / repo / "manifests" / tag).write_text(digest + "\n")

    return extra


def _bash_as_sh(files: Sequence[str]) -> Callable[[Path, Path], None]:
    def extra(rootfs: Path, scratch: Path) -> None:
        for f in files:
            _copy_host_file(rootfs, f)
        sh = rootfs / "bin" / "sh"
        sh.unlink()
        os.symlink("bash", sh)

    return extra


def _glibc_extra(files: Sequence[str]) -> Callable[[Path, Path], None]:
    def extra(rootfs: Path, scratch: Path) -> None:
        for f in files:
            _copy_host_file(rootfs, f)
        sh = rootfs / "bin" / "sh"
        sh.unlink()
        os.symlink("dash", sh)
        (rootfs / "etc" / "nsswitch.conf").write_text(NSSWITCH)

    return extra


def _nnp_extra(source: Path) -> Callable[[Path, Path], None]:
    def extra(rootfs: Path, scratch: Path) -> None:
        src = scratch / "nnp.c"
        shutil.copyfile(source, src)
        base._run(
            ["gcc", *base.CFLAGS, "-o", "nnp", src.name],
            image="nonewprivs",
            what="compiling nnp.c",
            cwd=scratch,
            env={"TMPDIR": str(scratch)},
        )
        base._run(["strip", "nnp"], image="nonewprivs", what="stripping nnp", cwd=scratch)
        target = rootfs / "usr" / "local" / "bin" / "nnp"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(scratch / "nnp", target)
        target.chmod(0o4755)  # set-uid root: what allowPrivilegeEscalation=false must defeat

    return extra


def _noop(rootfs: Path, scratch: Path) -> None:
    return None


def _chain(steps: Sequence[Callable[[Path, Path], None]]) -> Callable[[Path, Path], None]:
    def populate(rootfs: Path, scratch: Path) -> None:
        for step in steps:
            step(rootfs, scratch)

    return populate


def recipe_for(
    name: str,
    kind: str,
    *,
    agnhost: Path,
    busybox: Path = base.BUSYBOX_BINARY,
    pause_source: Path = base.PAUSE_SOURCE,
    nnp_source: Path = NNP_SOURCE,
    registry_image: base.ImageArchive | None = None,
    k8s_source: Path | None = None,
) -> base.Recipe:
    """The build recipe of one wanted image under its exact listed name; agnhost's fake
    registry serves `registry_image` (the pause archive) when given."""
    bb_inputs = {**base.busybox_inputs(base.sha256_file(busybox)), "layout": LAYOUT}
    shell_cfg = ("--config.env", f"PATH={base.DEFAULT_PATH}")
    if kind == "pause":
        return base.Recipe(
            name=name,
            inputs=base.pause_inputs(pause_source.read_bytes()),
            populate=base._populate_pause(pause_source),
            config_args=("--config.entrypoint", "/pause", "--config.user", "65535:65535"),
        )
    if kind == "glibc-shell":
        files = tool_files(GLIBC_TOOLS)
        return base.Recipe(
            name=name,
            inputs={
                **bb_inputs,
                "nsswitch": NSSWITCH,
                **{f: base.sha256_file(Path(f)) for f in files},
            },
            populate=_busybox_then(_glibc_extra(files), busybox),
            config_args=("--config.cmd", "sh", *shell_cfg),
        )
    if kind == "busybox":
        files = tool_files(SHELL_TOOLS)
        return base.Recipe(
            name=name,
            inputs={**bb_inputs, "sh": "bash", **{f: base.sha256_file(Path(f)) for f in files}},
            populate=_busybox_then(_bash_as_sh(files), busybox),
            config_args=("--config.cmd", "sh", *shell_cfg),
        )
    if kind == "nonroot":
        return base.Recipe(
            name=name,
            inputs={**bb_inputs, "user": NONROOT_USER},
            populate=_busybox_then(_noop, busybox),
            config_args=("--config.cmd", "sh", "--config.user", NONROOT_USER, *shell_cfg),
        )
    if kind == "nonewprivs":
        return base.Recipe(
            name=name,
            inputs={**bb_inputs, "nnp.c": base.sha256_bytes(nnp_source.read_bytes())},
            populate=_busybox_then(_nnp_extra(nnp_source), busybox),
            config_args=("--config.cmd", "nnp", *shell_cfg),
        )
    if kind == "agnhost":
        files = tool_files()
        if k8s_source is None:
            raise ValueError(f"{name}: the agnhost recipe needs the k8s.io/kubernetes source")
        porter = porter_files(k8s_source)
        inputs = {
            **bb_inputs,
            "agnhost": base.sha256_file(agnhost),
            "users": base.sha256_bytes("".join(AGNHOST_USERS).encode()),
            **{f: base.sha256_file(Path(f)) for f in [*files, *map(str, porter)]},
        }
        steps = [_agnhost_extra(agnhost, files, porter)]
        if registry_image is not None:
            inputs["registry"] = f"{REGISTRY_REPO}:{REGISTRY_TAG}={registry_image.key}"
            steps.append(_registry_extra(registry_image, REGISTRY_REPO, REGISTRY_TAG))
        return base.Recipe(
            name=name,
            inputs=inputs,
            populate=_busybox_then(_chain(steps), busybox),
            config_args=(
                "--config.entrypoint",
                "/agnhost",
                "--config.cmd",
                "pause",
                *shell_cfg,
            ),
        )
    raise ValueError(f"no recipe kind {kind!r} (image {name})")


def build(cache_dir: Path, recipes: Sequence[base.Recipe]) -> list[base.ImageArchive]:
    """Build each recipe's archive into cache_dir unless one with the same key is there."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for recipe in recipes:
        key = base.cache_key(recipe.name, recipe.inputs)
        path = base.archive_path(cache_dir, recipe.name, key)
        if path.is_file():
            log.info("image %s: cached %s", recipe.name, path.name)
        else:
            base.check_tools()
            log.info("image %s: building %s", recipe.name, path.name)
            work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
            try:
                base._build(recipe, path, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            base._prune(cache_dir, recipe.name, keep=path)
        out.append(base.ImageArchive(name=recipe.name, path=path, key=key))
    return out


def list_images(e2e_test: Path) -> list[str]:
    r = subprocess.run(
        [str(e2e_test), "--list-images"], capture_output=True, text=True, timeout=120, check=False
    )
    if r.returncode != 0:
        raise ImageListError(f"{e2e_test} --list-images failed: {r.stderr.strip()[-500:]}")
    return parse_image_list(r.stdout)


def prepare(
    *,
    e2e_test: Path,
    agnhost: Path,
    k8s_source: Path,
    cache_dir: Path,
    address: Path,
    ctr: str = "ctr",
) -> Mapping[str, str]:
    """Build (or reuse) every wanted image and import it into the containerd at `address`.
    Returns {image name: why it is needed}."""
    selected = select_images(list_images(e2e_test))
    first = [n for n, w in sorted(selected.items()) if w.kind != "agnhost"]
    archives = build(cache_dir, [recipe_for(n, selected[n].kind, agnhost=agnhost) for n in first])
    pause = next((a for a in archives if selected[a.name].kind == "pause"), None)
    archives += build(
        cache_dir,
        [
            recipe_for(n, w.kind, agnhost=agnhost, registry_image=pause, k8s_source=k8s_source)
            for n, w in sorted(selected.items())
            if w.kind == "agnhost"
        ],
    )
    base.import_images(ctr=ctr, address=address, archives=archives)
    return {n: w.why for n, w in sorted(selected.items())}
