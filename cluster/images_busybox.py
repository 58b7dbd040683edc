"""Busybox for the cluster's busybox image, built from source: Debian's busybox source package
(fetched with apt through a temporary deb-src list), upstream's defconfig made static against
musl (no NSS, so wget and nslookup work in a bare image), cached by version and recipe hash.
Builds the binary only; images.py wraps it into the image.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from cluster.spec import DEFAULT_CACHE

log = logging.getLogger(__name__)

UPSTREAM_VERSION = "1.35.0"
"""The busybox release built (docker.io/library/busybox:1.35); Debian bookworm's source package
is this release plus Debian's patches (security fixes among them)."""
BUILDER = "pykubelet-busybox/1"
CONFIG_OVERRIDES: Mapping[str, str | None] = {
    "CONFIG_STATIC": "y",
    # The small nslookup resolves through libc, whose resolver (musl's) honours resolv.conf's
    # search list and ndots: `nslookup kubernetes.default` finds kubernetes.default.svc.<domain>
    # as busybox 1.28 did in the Kubernetes DNS docs. The big one never searches a dotted name.
    "CONFIG_FEATURE_NSLOOKUP_BIG": None,
}
"""Changes to upstream's defconfig (None: not set)."""
PATCHES = tuple(sorted((Path(__file__).parent / "images" / "busybox").glob("*.patch")))
REQUIRED_APPLETS = ("sh", "wget", "nslookup", "nc", "httpd", "ping", "hostname", "sleep")
KERNEL_HEADERS = ("linux", "asm-generic", "mtd")
"""Kernel header dirs of /usr/include that musl-gcc's include path lacks (plus asm)."""
FALLBACK = Path("/bin/busybox")
TOOLS = {"musl-gcc": "musl-tools", "dpkg-source": "dpkg-dev", "make": "make", "apt-get": "apt"}
_TAIL = 3000


class BusyboxBuildError(RuntimeError):
    """Building busybox from source failed; the message names the step and its output."""


def musl_version() -> str:
    r = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "musl-dev"], capture_output=True, text=True
    )
    return r.stdout.strip() if r.returncode == 0 else "none"


def build_key(
    *,
    version: str = UPSTREAM_VERSION,
    overrides: Mapping[str, str | None] = CONFIG_OVERRIDES,
    patches: Mapping[str, bytes] | None = None,
    libc: str = "",
    arch: str = "",
) -> str:
    """sha256 over what the binary depends on: release, config changes, patches, libc, arch."""
    if patches is None:
        patches = {p.name: p.read_bytes() for p in PATCHES}
    doc = {
        "builder": BUILDER,
        "version": version,
        "config": dict(sorted(overrides.items())),
        "patches": {n: hashlib.sha256(b).hexdigest() for n, b in sorted(patches.items())},
        "libc": libc or musl_version(),
        "arch": arch or os.uname().machine,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def binary_path(cache: Path, key: str) -> Path:
    return cache / f"busybox-{UPSTREAM_VERSION}-{key[:16]}" / "busybox"


# ---- pure helpers ------------------------------------------------------------------------------
def deb_src_sources(text: str) -> str:
    """A sources file's `deb` entries as `deb-src` ones (one-line and deb822 formats alike);
    other entries dropped."""
    if re.search(r"^Types:", text, re.M):
        stanzas = [
            s for s in re.split(r"\n\s*\n", text) if re.search(r"^Types:(.*\s)?deb(\s|$)", s, re.M)
        ]
        return "\n\n".join(
            re.sub(r"^Types:.*$", "Types: deb-src", s.strip(), flags=re.M) for s in stanzas
        ) + ("\n" if stanzas else "")
    lines = [ln for ln in text.splitlines() if re.match(r"\s*deb\s", ln)]
    return "".join(re.sub(r"^\s*deb\s", "deb-src ", ln) + "\n" for ln in lines)


def apply_overrides(config: str, overrides: Mapping[str, str | None]) -> str:
    """A .config with each option set (`X=y`) or unset (`# X is not set`), added when absent."""
    out, seen = [], set()
    for line in config.splitlines():
        m = re.match(r"^(?:# )?(CONFIG_[A-Za-z0-9_]+)(?:=| is not set)", line)
        if m and m.group(1) in overrides:
            name = m.group(1)
            seen.add(name)
            value = overrides[name]
            line = f"{name}={value}" if value is not None else f"# {name} is not set"
        out.append(line)
    for name, value in overrides.items():
        if name not in seen:
            out.append(f"{name}={value}" if value is not None else f"# {name} is not set")
    return "\n".join(out) + "\n"


def orig_version(dsc: str) -> str:
    """The upstream version of a .dsc (`Version: 1:1.35.0-4+deb12u1` -> 1.35.0)."""
    m = re.search(r"^Version:\s*(?:\d+:)?([^\s-]+)", dsc, re.M)
    if not m:
        raise BusyboxBuildError("busybox source: the .dsc has no Version field")
    return m.group(1)


def missing_applets(listing: str, required: Sequence[str] = REQUIRED_APPLETS) -> list[str]:
    have = {line.strip() for line in listing.splitlines()}
    return [a for a in required if a not in have]


# ---- building ----------------------------------------------------------------------------------
def _run(argv: Sequence[str], what: str, *, cwd: Path, stdin: str | None = None) -> str:
    log.debug("busybox: %s", " ".join(argv))
    try:
        r = subprocess.run(
            list(argv),
            cwd=cwd,
            input=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"},
        )
    except OSError as e:
        raise BusyboxBuildError(f"busybox {UPSTREAM_VERSION}: {what}: {e}") from e
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip()[-_TAIL:]
        raise BusyboxBuildError(f"busybox {UPSTREAM_VERSION}: {what} (exit {r.returncode}): {tail}")
    return r.stdout


def _apt_options(work: Path) -> list[str]:
    return [
        "-o", "Dir::Etc::SourceList=/dev/null",
        "-o", f"Dir::Etc::SourceParts={work / 'sources'}",
        "-o", f"Dir::State::Lists={work / 'lists'}",
        "-o", f"Dir::Cache={work / 'apt-cache'}",
        "-o", "APT::Sandbox::User=root",
    ]  # fmt: skip


def fetch_source(work: Path) -> Path:
    """Debian's busybox source package, unpacked with its patches applied (a temporary deb-src
    list and apt state under `work`: the system's apt configuration is not touched)."""
    sources = work / "sources"
    sources.mkdir()
    for d in ("lists/partial", "apt-cache/archives/partial", "src"):
        (work / d).mkdir(parents=True)
    system = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for i, f in enumerate(p for p in system if p.suffix in (".list", ".sources") and p.is_file()):
        (sources / f"{i:02d}-src{f.suffix}").write_text(deb_src_sources(f.read_text()))
    opts = _apt_options(work)
    _run(["apt-get", *opts, "update"], "apt-get update (deb-src lists)", cwd=work)
    _run(
        ["apt-get", *opts, "source", "--download-only", "busybox"],
        "apt-get source",
        cwd=work / "src",
    )
    dscs = sorted((work / "src").glob("busybox_*.dsc"))
    if not dscs:
        raise BusyboxBuildError(f"busybox {UPSTREAM_VERSION}: apt-get source fetched no .dsc")
    found = orig_version(dscs[0].read_text())
    if found != UPSTREAM_VERSION:
        raise BusyboxBuildError(
            f"busybox: Debian's source package is {found}, pykubelet builds {UPSTREAM_VERSION} "
            "(change UPSTREAM_VERSION and the image tag together)"
        )
    tree = work / "src" / "busybox"
    _run(["dpkg-source", "-x", dscs[0].name, tree.name], "dpkg-source -x", cwd=work / "src")
    (tree / "pykubelet-source").write_text(dscs[0].name + "\n")
    return tree


def _kernel_headers(work: Path) -> Path:
    """An include dir with the kernel headers (linux-libc-dev) that musl-gcc does not search."""
    kh = work / "kernel-headers"
    kh.mkdir()
    for d in KERNEL_HEADERS:
        if Path("/usr/include", d).is_dir():
            (kh / d).symlink_to(Path("/usr/include", d))
    multiarch = _run(["gcc", "-print-multiarch"], "gcc -print-multiarch", cwd=work).strip()
    (kh / "asm").symlink_to(Path("/usr/include", multiarch, "asm"))
    return kh


def compile_tree(tree: Path, work: Path) -> Path:
    """Patch, configure (defconfig + CONFIG_OVERRIDES) and build; returns the binary."""
    for patch in PATCHES:
        _run(["patch", "-p1", "-i", str(patch)], f"applying {patch.name}", cwd=tree)
    _run(["make", "defconfig"], "make defconfig", cwd=tree)
    config = tree / ".config"
    config.write_text(apply_overrides(config.read_text(), CONFIG_OVERRIDES))
    _run(["make", "oldconfig"], "make oldconfig", cwd=tree, stdin="\n" * 200)
    make = ["make", f"-j{os.cpu_count() or 1}", "CC=musl-gcc"]
    make.append(f"EXTRA_CFLAGS=-isystem {_kernel_headers(work)}")
    _run([*make, "busybox"], "make (musl-gcc, static)", cwd=tree)
    binary = tree / "busybox"
    missing = missing_applets(_run([str(binary), "--list"], "busybox --list", cwd=tree))
    if missing:
        raise BusyboxBuildError(f"busybox {UPSTREAM_VERSION}: built without applets {missing}")
    return binary


def check_tools() -> None:
    missing = [f"{t} (apt: {p})" for t, p in TOOLS.items() if shutil.which(t) is None]
    if missing:
        raise BusyboxBuildError("building busybox needs missing tools: " + ", ".join(missing))


def ensure_binary(cache: Path = DEFAULT_CACHE) -> Path:
    """The cached busybox of this recipe, built first when missing (a cold build takes a
    minute or two on 2 cores). Raises BusyboxBuildError."""
    target = binary_path(cache, build_key())
    if target.is_file():
        return target
    check_tools()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits, then finds the binary
        if target.is_file():
            return target
        log.info("busybox %s: building from Debian's source package with musl", UPSTREAM_VERSION)
        t0 = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
        try:
            binary = compile_tree(fetch_source(work), work)
            tmp = target.with_suffix(".tmp")
            shutil.copyfile(binary, tmp)
            tmp.chmod(0o755)
            shutil.copyfile(binary.parent / "pykubelet-source", target.parent / "source")
            os.replace(tmp, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.info("busybox %s: built in %.0fs", UPSTREAM_VERSION, time.monotonic() - t0)
    return target


def binary_for_image(cache: Path = DEFAULT_CACHE) -> Path:
    """The busybox the image gets: ours, or, when it cannot be built, Debian's busybox-static
    with a loud error (its glibc-static wget and nslookup crash without NSS libraries)."""
    try:
        return ensure_binary(cache)
    except BusyboxBuildError as e:
        log.error(
            "%s; falling back to %s (Debian's busybox-static: wget and nslookup crash in pods)",
            e,
            FALLBACK,
        )
        return FALLBACK


def main() -> int:
    """`python -m cluster.images_busybox`: build (or find) the binary, print its path."""
    logging.basicConfig(level=logging.INFO, format="[busybox] %(message)s")
    try:
        print(ensure_binary())
    except BusyboxBuildError as e:
        print(f"{e}\n`pykubelet up` will fall back to {FALLBACK}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
