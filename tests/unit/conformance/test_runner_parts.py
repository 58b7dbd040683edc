"""Unit tests for the conformance runner's pure parts: e2e command lines, host facts parsing,
CIDR choice, image selection and the agent supervisor (with fakes, no processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conformance import e2e, e2e_images, hostfacts
from tests.conformance.run import pick_cluster_cidr
from tests.conformance.supervisor import Supervisor

LISTED = """I1123 log noise
registry.k8s.io/e2e-test-images/busybox:1.37.0-1
registry.k8s.io/e2e-test-images/agnhost:2.63.0
registry.k8s.io/e2e-test-images/agnhost:2.55
gcr.io/k8s-authenticated-test/agnhost:2.6
registry.k8s.io/pause:3.10.2
registry.k8s.io/e2e-test-images/nonewprivs:1.4
registry.k8s.io/e2e-test-images/nonroot:1.5
registry.k8s.io/e2e-test-images/glibc-dns-testing:2.0.0
invalid.registry.k8s.io/invalid/alpine:3.1
registry.k8s.io/e2e-test-images/busybox:1.36.1-1
"""


def test_parallel_pass_uses_ginkgo_cli_with_workers(tmp_path: Path) -> None:
    flags = e2e.e2e_flags(kubeconfig=Path("/k"), kubectl=Path("/kubectl"), report_dir=tmp_path)
    p = e2e.parallel_pass(
        ginkgo=Path("/g"),
        e2e_test=Path("/e2e.test"),
        procs=3,
        timeout_s=600,
        flags=flags,
        out_dir=tmp_path,
    )
    argv = list(p.argv)
    assert argv[0] == "/g" and "--procs=3" in argv and "--timeout=600s" in argv
    assert f"--focus={e2e.FOCUS}" in argv and f"--skip={e2e.SKIP}" in argv
    sep = argv.index("--")
    assert argv[sep - 1] == "/e2e.test"
    assert argv[sep + 1 :] == flags
    assert "--provider=local" in flags and "--kubeconfig=/k" in flags
    assert p.junit == tmp_path / "junit_parallel.xml"


def test_single_worker_and_serial_passes_run_e2e_test_directly(tmp_path: Path) -> None:
    one = e2e.parallel_pass(
        ginkgo=Path("/g"),
        e2e_test=Path("/e2e.test"),
        procs=1,
        timeout_s=60,
        flags=[],
        out_dir=tmp_path,
    )
    assert one.argv[0] == "/e2e.test" and "--ginkgo.timeout=60s" in one.argv
    serial = e2e.serial_pass(
        e2e_test=Path("/e2e.test"), timeout_s=120, flags=["--x"], out_dir=tmp_path
    )
    assert "--ginkgo.label-filter=Serial" in serial.argv
    assert f"--ginkgo.focus={e2e.FOCUS}" in serial.argv
    assert f"--ginkgo.skip={e2e.SERIAL_SKIP}" in serial.argv
    assert serial.argv[-1] == "--x" and serial.junit.name == "junit_serial.xml"


def test_select_images_takes_exact_listed_names_and_never_the_invalid_one() -> None:
    selected = e2e_images.select_images(e2e_images.parse_image_list(LISTED))
    assert set(selected) == {
        "registry.k8s.io/e2e-test-images/agnhost:2.63.0",
        "registry.k8s.io/e2e-test-images/agnhost:2.55",
        "registry.k8s.io/e2e-test-images/busybox:1.37.0-1",
        "registry.k8s.io/pause:3.10.2",
        "registry.k8s.io/e2e-test-images/nonewprivs:1.4",
        "registry.k8s.io/e2e-test-images/nonroot:1.5",
        "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.0.0",
    }
    assert selected["registry.k8s.io/pause:3.10.2"].kind == "pause"


def test_select_images_names_what_is_missing() -> None:
    with pytest.raises(e2e_images.ImageListError, match="nonewprivs"):
        e2e_images.select_images(
            [n for n in e2e_images.parse_image_list(LISTED) if "nonewprivs" not in n]
        )


def test_ldd_paths() -> None:
    out = (
        "\tlinux-vdso.so.1 (0x00007ff)\n"
        "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1)\n"
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007f2)\n"
    )
    assert e2e_images.ldd_paths(out) == [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
    ]


def test_registry_files_follow_the_fake_registry_layout(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    digests = {"m": "ab" + "1" * 62, "c": "cd" + "2" * 62, "l": "ef" + "3" * 62}
    manifest = {
        "config": {"digest": f"sha256:{digests['c']}"},
        "layers": [{"digest": f"sha256:{digests['l']}"}],
    }
    (blobs / digests["m"]).write_text(json.dumps(manifest))
    (blobs / digests["c"]).write_text("{}")
    (blobs / digests["l"]).write_text("layer")
    (tmp_path / "index.json").write_text(
        json.dumps({"manifests": [{"digest": f"sha256:{digests['m']}"}]})
    )
    files = e2e_images.registry_files(tmp_path, "pause", "testing")
    assert files == {
        f"pause/manifests/sha256/ab/{digests['m']}/data": blobs / digests["m"],
        f"pause/blobs/sha256/cd/{digests['c']}/data": blobs / digests["c"],
        f"pause/blobs/sha256/ef/{digests['l']}/data": blobs / digests["l"],
    }


def test_dummy_link_probe() -> None:
    assert hostfacts.dummy_link(lambda argv: (0, "")) is None
    ev = hostfacts.dummy_link(lambda argv: (2, "Error: Unknown device type."))
    assert ev is not None and "Unknown device type" in ev and "unshare --net" in ev


def test_pick_cluster_cidr_avoids_used_ranges() -> None:
    text = "10.200.0.0/16 dev a\ninet 10.201.3.4/24 brd\n"
    assert pick_cluster_cidr(text) == "10.202.0.0/16"
    with pytest.raises(RuntimeError):
        pick_cluster_cidr(text, first=200, last=201)


def test_supervisor_records_a_crash_and_restarts() -> None:
    pids: list[int | None] = [10, None, 11, 11]
    restarts: list[int] = []
    said: list[str] = []
    sup = Supervisor(
        alive=lambda: pids.pop(0) if len(pids) > 1 else pids[0],
        restart=lambda: restarts.append(1),
        log_tail=lambda n: "last words",
        say=said.append,
    )
    sup.check()  # alive
    assert sup.crashes == []
    sup.check()  # dead -> recorded, restarted
    assert len(sup.crashes) == 1 and restarts == [1]
    assert sup.crashes[0].log_tail == "last words" and "pid 10" in sup.crashes[0].exit_info
    sup.check()  # alive again
    assert len(sup.crashes) == 1


def test_run_pass_watchdog_kills_the_whole_group(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {marker}; trap '' INT; wait"
    p = e2e.Pass("t", ("sh", "-c", script), tmp_path / "j.xml", 0.0, tmp_path / "t.log")
    out = e2e.run_pass(p, grace=0.5, interrupt_wait=0.5)
    assert out.killed_by_watchdog and out.exit_code != 0
    child = int(marker.read_text())
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text()


def test_run_pass_returns_the_exit_code(tmp_path: Path) -> None:
    p = e2e.Pass("t", ("sh", "-c", "echo hi; exit 3"), tmp_path / "j.xml", 60.0, tmp_path / "t.log")
    out = e2e.run_pass(p)
    assert (out.exit_code, out.killed_by_watchdog) == (3, False)
    assert (tmp_path / "t.log").read_text() == "hi\n"
