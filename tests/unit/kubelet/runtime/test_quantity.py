"""Resource quantity parsing and the cgroup CPU conversions (upstream's cm helpers)."""

from __future__ import annotations

import pytest

from kube.quantity import QuantityError, parse_cpu, parse_memory
from kubelet.runtime.criconfig import milli_cpu_to_quota, milli_cpu_to_shares

CPU: list[tuple[object, int]] = [
    ("500m", 500),
    ("2", 2000),
    ("0.5", 500),
    (".5", 500),
    ("1.", 1000),
    ("100u", 1),  # rounded up, as MilliValue() does
    ("0.0001", 1),
    ("0", 0),
    ("1e-3", 1),
    ("1k", 1_000_000),
    (2, 2000),
    (0.25, 250),
    (0.1, 100),
    (1e-05, 1),
]


@pytest.mark.parametrize(("value", "milli"), CPU)
def test_parse_cpu(value: object, milli: int) -> None:
    assert parse_cpu(value) == milli


MEMORY: list[tuple[object, int]] = [
    ("64Mi", 64 * 2**20),
    ("123Mi", 123 * 2**20),
    ("1G", 10**9),
    ("1Gi", 2**30),
    ("128974848", 128974848),
    ("129e6", 129_000_000),
    ("129E6", 129_000_000),
    ("1E", 10**18),
    ("1Ki", 1024),
    ("1.5Ki", 1536),
    ("1k", 1000),
    ("500m", 1),  # half a byte rounds up
    ("+2", 2),
    (" 7 ", 7),
    (1048576, 1048576),
]


@pytest.mark.parametrize(("value", "nbytes"), MEMORY)
def test_parse_memory(value: object, nbytes: int) -> None:
    assert parse_memory(value) == nbytes


@pytest.mark.parametrize(
    "value",
    [
        "12XB",
        "",
        "Mi",
        "1.2.3",
        "1e",
        "1 Mi",
        "-1",
        "-5Mi",
        "1KiB",
        "0x10",
        "1e999999999",
        True,
        None,
        [1],
        -3,
    ],
)
def test_bad_quantities(value: object) -> None:
    with pytest.raises(QuantityError):
        parse_memory(value)


@pytest.mark.parametrize(
    ("milli", "shares"),
    [(0, 2), (1, 2), (2, 2), (100, 102), (250, 256), (1000, 1024), (10**6, 262144)],
)
def test_milli_cpu_to_shares(milli: int, shares: int) -> None:
    assert milli_cpu_to_shares(milli) == shares


@pytest.mark.parametrize(
    ("milli", "quota"), [(0, 0), (1, 1000), (5, 1000), (10, 1000), (250, 25000), (1500, 150000)]
)
def test_milli_cpu_to_quota(milli: int, quota: int) -> None:
    assert milli_cpu_to_quota(milli) == quota
