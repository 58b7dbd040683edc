"""Busybox from source: the deb-src list made from the system's sources, the config overrides, the
version check, the build key and the cache. Runs no apt, make or compiler; needs no root."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cluster import images_busybox as bb


def test_deb_src_from_deb822_sources() -> None:
    text = (
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb-src\nURIs: http://x\nSuites: y\nComponents: main\n\n"
        "Types: deb\n# a comment\nURIs: http://deb.debian.org/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n"
    )
    out = bb.deb_src_sources(text)
    stanzas = out.strip().split("\n\n")
    assert len(stanzas) == 2
    assert all(s.startswith("Types: deb-src\n") for s in stanzas)
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" in stanzas[0]
    assert "Suites: bookworm-security" in stanzas[1] and "http://x" not in out


def test_deb_src_from_one_line_lists() -> None:
    text = (
        "# comment\ndeb [signed-by=/k.gpg] http://deb.debian.org/debian bookworm main\n"
        "deb-src http://old bookworm main\n  deb http://m bookworm-updates main contrib\n"
    )
    assert bb.deb_src_sources(text) == (
        "deb-src [signed-by=/k.gpg] http://deb.debian.org/debian bookworm main\n"
        "deb-src http://m bookworm-updates main contrib\n"
    )
    assert bb.deb_src_sources("") == ""


def test_apply_overrides_sets_unsets_and_adds() -> None:
    config = (
        "# CONFIG_STATIC is not set\nCONFIG_NSLOOKUP=y\nCONFIG_FEATURE_NSLOOKUP_BIG=y\n"
        "CONFIG_FEATURE_NSLOOKUP_BIGGER=y\n"
    )
    out = bb.apply_overrides(
        config,
        {"CONFIG_STATIC": "y", "CONFIG_FEATURE_NSLOOKUP_BIG": None, "CONFIG_NEW": "7"},
    )
    assert out.splitlines() == [
        "CONFIG_STATIC=y",
        "CONFIG_NSLOOKUP=y",
        "# CONFIG_FEATURE_NSLOOKUP_BIG is not set",
        "CONFIG_FEATURE_NSLOOKUP_BIGGER=y",  # a longer name is another option
        "CONFIG_NEW=7",
    ]


def test_shipped_overrides() -> None:
    assert bb.CONFIG_OVERRIDES["CONFIG_STATIC"] == "y"
    assert bb.CONFIG_OVERRIDES["CONFIG_FEATURE_NSLOOKUP_BIG"] is None
    assert [p.name for p in bb.PATCHES] == ["nslookup-server-from-resolv-conf.patch"]


def test_orig_version() -> None:
    assert bb.orig_version("Format: 3.0 (quilt)\nVersion: 1:1.35.0-4+deb12u1\n") == "1.35.0"
    assert bb.orig_version("Version: 1.36.1-9\n") == "1.36.1"
    with pytest.raises(bb.BusyboxBuildError, match="Version"):
        bb.orig_version("Source: busybox\n")


def test_missing_applets() -> None:
    assert bb.missing_applets("sh\nwget\n", ("sh", "wget", "nc")) == ["nc"]
    assert bb.missing_applets("\n".join(bb.REQUIRED_APPLETS)) == []


def test_build_key_follows_every_input() -> None:
    base = {"libc": "1.2.3-1", "arch": "x86_64", "patches": {"a.patch": b"x"}}
    key = bb.build_key(**base)  # type: ignore[arg-type]
    assert key == bb.build_key(**base)  # type: ignore[arg-type]
    for change in (
        {"version": "1.36.1"},
        {"overrides": {"CONFIG_STATIC": "y"}},
        {"patches": {"a.patch": b"y"}},
        {"libc": "1.2.4-1"},
        {"arch": "aarch64"},
    ):
        assert bb.build_key(**{**base, **change}) != key, change  # type: ignore[arg-type]


def test_ensure_binary_reuses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bb, "musl_version", lambda: "1.2.3-1")
    target = bb.binary_path(tmp_path, bb.build_key())
    target.parent.mkdir(parents=True)
    target.write_bytes(b"cached")

    def no_build(*args: object) -> Path:
        raise AssertionError("built again")

    monkeypatch.setattr(bb, "fetch_source", no_build)
    assert bb.ensure_binary(tmp_path) == target
    assert target.parent.name.startswith(f"busybox-{bb.UPSTREAM_VERSION}-")


def test_fallback_is_loud(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(cache: Path) -> Path:
        raise bb.BusyboxBuildError("busybox 1.35.0: apt-get source (exit 100): no network")

    monkeypatch.setattr(bb, "ensure_binary", fail)
    assert bb.binary_for_image(tmp_path) == bb.FALLBACK
    assert "no network" in caplog.text and "falling back" in caplog.text


def test_missing_tools_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "musl-gcc" else "/x")
    with pytest.raises(bb.BusyboxBuildError, match=r"musl-gcc \(apt: musl-tools\)"):
        bb.check_tools()
