"""Kubernetes quantities: the grammar, conversions to cores and bytes, and rounding up."""

from __future__ import annotations

import contextlib
import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from presize.errors import QuantityError, SettingsError
from presize.units import (
    FLOAT_NOISE,
    GIB,
    MIB,
    Rounding,
    format_bytes,
    format_cpu,
    parse_bytes,
    parse_cpu,
    parse_quantity,
    round_cpu,
    round_memory,
)

# ------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250m", "0.25"),
        ("0.5", "0.5"),
        ("2", "2"),
        ("1500u", "0.0015"),
        ("100n", "0.0000001"),
        ("1k", "1000"),
        ("1M", "1000000"),
        ("1G", "1000000000"),
        ("1T", "1000000000000"),
        ("1P", "1000000000000000"),
        ("1E", "1000000000000000000"),
        ("1Ki", "1024"),
        ("1Mi", "1048576"),
        ("1.5Gi", "1610612736"),
        ("1Ti", "1099511627776"),
        ("1Pi", "1125899906842624"),
        ("1Ei", "1152921504606846976"),
        ("0.5Ki", "512"),
        ("1e3", "1000"),
        ("1E3", "1000"),
        ("1.5e-3", "0.0015"),
        ("1e+2", "100"),
        ("+5", "5"),
        ("-5", "-5"),
        (".5", "0.5"),
        ("5.", "5"),
        ("0", "0"),
        ("007", "7"),
        ("9223372036854775807", "9223372036854775807"),
    ],
)
def test_parse_quantity_reads_every_suffix_exactly(text: str, expected: str) -> None:
    assert parse_quantity(text) == Decimal(expected)


@pytest.mark.parametrize(
    "text",
    [
        "", " 1", "1 ", "m", "Ki", "1.2.3", "1mi", "1KI", "1ki", "1e", "1e1.5", "1Kib", "abc",
        "1_000", "\u0663", "inf", "nan", "Infinity", "0x10", "--1", "+-1", "1e99999",
        "9223372036854775808", "8Ei", "10E", "1,5", "1m1", "1 m", ".", "e3", "１",
    ],
)  # fmt: skip
def test_parse_quantity_rejects_malformed_or_out_of_range(text: str) -> None:
    with pytest.raises(QuantityError, match="quantity"):
        parse_quantity(text)


def test_parse_quantity_error_names_the_input() -> None:
    with pytest.raises(QuantityError, match="'12 cores'"):
        parse_quantity("12 cores")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2, Decimal(2)), (0.5, Decimal("0.5")), (0.1, Decimal("0.1")), (-3, Decimal(-3))],
)
def test_parse_quantity_takes_numbers_as_they_are(value: float, expected: Decimal) -> None:
    assert parse_quantity(value) == expected


@pytest.mark.parametrize("value", [True, None, math.nan, math.inf, b"1", [1]])
def test_parse_quantity_rejects_non_numbers(value: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "cores"),
    [("250m", 0.25), ("2", 2.0), ("1500u", 0.0015), ("1e-3", 0.001), (0.5, 0.5), (2, 2.0),
     ("-0", 0.0)],
)  # fmt: skip
def test_parse_cpu_returns_cores(value: str | float, cores: float) -> None:
    parsed = parse_cpu(value)
    assert parsed == cores
    assert math.copysign(1.0, parsed) == 1.0


@pytest.mark.parametrize(
    ("value", "n"),
    [("512Mi", 536870912.0), ("1G", 1e9), ("1e3", 1000.0), ("1.5Ki", 1536.0), (1024, 1024.0)],
)
def test_parse_bytes_returns_bytes(value: str | float, n: float) -> None:
    assert parse_bytes(value) == n


@pytest.mark.parametrize("parse", [parse_cpu, parse_bytes])
@pytest.mark.parametrize("value", ["-1", "-250m", -0.5])
def test_parse_cpu_and_bytes_reject_negative_amounts(parse: object, value: str | float) -> None:
    assert callable(parse)
    with pytest.raises(QuantityError, match="negative"):
        parse(value)


# ------------------------------------------------------------------------------ formatting


@pytest.mark.parametrize(
    ("cores", "text"),
    [
        (0.25, "250m"),
        (2.0, "2"),
        (2, "2"),
        (0.0, "0"),
        (0.0001, "1m"),
        (0.1 * 3, "300m"),  # 0.30000000000000004: float noise, not a 301st millicore
        (1.5, "1500m"),
        (0.2501, "251m"),
        (2.0001, "2001m"),
        (1000.0, "1000"),
    ],
)
def test_format_cpu_rounds_up_to_whole_millicores(cores: float, text: str) -> None:
    assert format_cpu(cores) == text


@pytest.mark.parametrize(
    ("n", "granularity", "text"),
    [
        (536870912, MIB, "512Mi"),
        (GIB, MIB, "1Gi"),
        (1536 * MIB, MIB, "1536Mi"),
        (2.5 * GIB, MIB, "2560Mi"),
        (3072, MIB, "3Ki"),
        (2**60, MIB, "1Ei"),
        (0, MIB, "0"),
        (1e9, MIB, "954Mi"),  # 953.67 MiB, rounded up
        (1, MIB, "1Mi"),
        (1536.5, MIB, "1Mi"),
        (1e9, 1, "1000000000"),
        (1500, 1, "1500"),
        (1500, 1000, "2000"),
    ],
)
def test_format_bytes_prefers_exact_binary_units(n: float, granularity: int, text: str) -> None:
    assert format_bytes(n, granularity=granularity) == text


@pytest.mark.parametrize("fmt", [format_cpu, format_bytes])
@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf, True, 2.0**63])
def test_format_rejects_negative_non_finite_and_absurd_amounts(fmt: object, value: float) -> None:
    assert callable(fmt)
    with pytest.raises(QuantityError):
        fmt(value)


# ------------------------------------------------------------------------------ rounding


@pytest.mark.parametrize(
    ("cores", "step", "direction", "expected"),
    [
        (0.2501, 5, Rounding.UP, 0.255),
        (0.2501, 1, Rounding.UP, 0.251),
        (0.2549, 1, Rounding.DOWN, 0.254),
        (0.2549, 5, Rounding.DOWN, 0.25),
        (0.2525, 5, Rounding.NEAREST, 0.255),  # half up
        (0.2524, 5, Rounding.NEAREST, 0.25),
        (0.3, 1, Rounding.UP, 0.3),
        (0.1 * 3, 5, Rounding.UP, 0.3),
        (0.0, 5, Rounding.UP, 0.0),
        (1.0001, 100, Rounding.UP, 1.1),
    ],
)
def test_round_cpu_lands_on_the_step_grid(
    cores: float, step: int, direction: Rounding, expected: float
) -> None:
    assert round_cpu(cores, step_millicores=step, direction=direction) == expected


@pytest.mark.parametrize(
    ("n", "step", "direction", "expected"),
    [
        (1.5 * MIB + 1, MIB, Rounding.UP, 2 * MIB),
        (1.5 * MIB, MIB, Rounding.DOWN, 1 * MIB),
        (1.5 * MIB, MIB, Rounding.NEAREST, 2 * MIB),
        (512 * MIB, MIB, Rounding.UP, 512 * MIB),
        (1001, 1000, Rounding.UP, 2000),
        (0, MIB, Rounding.UP, 0),
    ],
)
def test_round_memory_lands_on_the_step_grid(
    n: float, step: int, direction: Rounding, expected: float
) -> None:
    assert round_memory(n, step_bytes=step, direction=direction) == expected


@pytest.mark.parametrize("step", [0, -5, 1.5, True])
def test_rounding_rejects_a_bad_step(step: int) -> None:
    with pytest.raises(SettingsError):
        round_cpu(1.0, step_millicores=step)
    with pytest.raises(SettingsError):
        round_memory(1.0, step_bytes=step)
    with pytest.raises(SettingsError):
        format_bytes(1.0, granularity=step)


# ------------------------------------------------------------------------------ properties

_CORES = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
_BYTES = st.floats(min_value=0.0, max_value=2.0**62, allow_nan=False)
_GRAMMAR_ALPHABET = "0123456789.+-eEkKMGTPimnu \t_xi"


@given(_CORES)
def test_format_cpu_then_parse_never_loses_and_adds_under_a_millicore(cores: float) -> None:
    back = parse_cpu(format_cpu(cores))
    assert back >= cores - FLOAT_NOISE * max(0.001, cores)
    assert back <= cores + 0.001
    assert format_cpu(back) == format_cpu(cores)


@given(_BYTES)
def test_format_bytes_then_parse_never_loses_and_adds_under_a_mebibyte(n: float) -> None:
    back = parse_bytes(format_bytes(n))
    assert back >= n - FLOAT_NOISE * max(MIB, n)  # noise is relative to the step or the value
    assert back <= n + MIB
    assert format_bytes(back) == format_bytes(n)


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "e2", "e-3"]),
)
def test_parse_quantity_matches_hand_arithmetic(mantissa: int, suffix: str) -> None:
    scale = {
        "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(1000), "M": Decimal(10**6),
        "G": Decimal(10**9), "Ki": Decimal(1024), "Mi": Decimal(1024**2),
        "Gi": Decimal(1024**3), "e2": Decimal(100), "e-3": Decimal("0.001"),
    }[suffix]  # fmt: skip
    assert parse_quantity(f"{mantissa}{suffix}") == mantissa * scale


@given(st.one_of(st.text(), st.text(alphabet=_GRAMMAR_ALPHABET, max_size=12)))
def test_parse_raises_only_quantity_errors(text: str) -> None:
    for parse in (parse_quantity, parse_cpu, parse_bytes):
        with contextlib.suppress(QuantityError):
            parse(text)


@given(_CORES, st.sampled_from([1, 5, 10, 100]))
def test_round_cpu_brackets_the_value(cores: float, step: int) -> None:
    up = round_cpu(cores, step_millicores=step, direction=Rounding.UP)
    down = round_cpu(cores, step_millicores=step, direction=Rounding.DOWN)
    nearest = round_cpu(cores, step_millicores=step, direction=Rounding.NEAREST)
    noise = 1e-9 * max(1.0, cores)
    assert down - noise <= cores <= up + noise
    assert down <= nearest <= up
    assert up - down <= step / 1000 + noise
    assert math.isclose(round(up * 1000 / step), up * 1000 / step, abs_tol=1e-6)


def test_keys_hash_like_their_fields_and_survive_pickling_into_another_process() -> None:
    import pickle
    import subprocess
    import sys

    from presize.model import ContainerKey, OwnerKind, WorkloadKey

    key = ContainerKey(WorkloadKey("shop", OwnerKind.DEPLOYMENT, "web"), "app")
    assert key == ContainerKey(WorkloadKey("shop", OwnerKind.DEPLOYMENT, "web"), "app")
    assert len({key, ContainerKey(WorkloadKey("shop", OwnerKind.DEPLOYMENT, "web"), "app")}) == 1
    code = (
        "import pickle, sys; from presize.model import *; "
        "k = pickle.loads(sys.stdin.buffer.read()); "
        "fresh = ContainerKey(WorkloadKey('shop', OwnerKind.DEPLOYMENT, 'web'), 'app'); "
        "print(hash(k) == hash(fresh) and {k: 1}.get(fresh) == 1)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(key), capture_output=True, check=True,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": "."},
    )  # fmt: skip
    assert out.stdout.strip() == b"True"
