"""Kubernetes resource quantities (``"250m"``, ``"512Mi"``, ``"1e3"``) to and from numbers.

Design decisions:

* **Parse exactly, convert once.** :func:`parse_quantity` returns a :class:`~decimal.Decimal`
  holding exactly the value that was written (``"1500u"`` is 0.0015, ``"1Ei"`` is 2**60). The
  domain works in floats (cores, bytes, see :mod:`presize.model`), so :func:`parse_cpu` and
  :func:`parse_bytes` convert to ``float`` at the very end. Kubernetes itself rounds a stored
  quantity up to whole milli-units; presize reads pod specs back from the API server, where
  that has already happened, so the parser does not repeat it.
* **The grammar is Kubernetes', not Python's.** ``float("inf")``, ``"1_000"``, ``" 1"``,
  ``"0x10"`` and Unicode digits are all rejected, and the same string means the same number
  here and in the API server. ``"1E"`` is one exa, ``"1E3"`` is a thousand, as in Kubernetes.
* **Formatting rounds up, with a tolerance for float noise.** A request that is too small
  throttles or OOM-kills; one that is a millicore too large costs nothing. So ``format_cpu``
  and ``format_bytes`` never round down, but ``0.1 * 3`` (``0.30000000000000004``) still
  formats as ``"300m"``: a value within :data:`FLOAT_NOISE` of a whole step (relative to the
  value, or to one step for values under a step) is treated as exactly that step.
* **Rounding direction is a parameter.** Requests round up; a caller that needs a floor (for
  instance, how much fits on a node) asks for :attr:`Rounding.DOWN`.

Every bad input raises :class:`~presize.errors.QuantityError` naming the input.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, localcontext
from enum import StrEnum

from presize.errors import QuantityError, SettingsError

__all__ = [
    "FLOAT_NOISE",
    "GIB",
    "KIB",
    "MIB",
    "Rounding",
    "format_bytes",
    "format_cpu",
    "parse_bytes",
    "parse_cpu",
    "parse_quantity",
    "round_cpu",
    "round_memory",
]

KIB = 1024
MIB = 1024**2
GIB = 1024**3

#: Relative difference under which a float is taken to be the whole step it is close to.
FLOAT_NOISE = 1e-9

# Kubernetes refuses quantities whose magnitude exceeds 2**63 - 1 in canonical units; so do we.
_MAX_MAGNITUDE = Decimal(2**63 - 1)
# Formatting and rounding accept up to 2**62, so that a value rounded up still parses back.
_MAX_FORMAT = float(2**62)
# Bound the explicit exponent before building a Decimal from it (keeps "1e999999999999" cheap).
_MAX_EXPONENT = 10_000

_DECIMAL_SUFFIXES: dict[str, int] = {
    "n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18,
}  # fmt: skip
_BINARY_SUFFIXES: dict[str, int] = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
# Largest first, so format_bytes picks the biggest exact unit.
_BINARY_BY_SIZE: tuple[tuple[str, int], ...] = tuple(
    (suffix, 1024**power)
    for suffix, power in sorted(_BINARY_SUFFIXES.items(), key=lambda kv: -kv[1])
)

# <signedNumber><suffix>, suffix one of: binary SI, decimal exponent, decimal SI (maybe empty).
# Alternation order matters: "1E3" is an exponent, "1E" falls through to the exa suffix.
_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)"
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)"
    r"|[eE](?P<exponent>[+-]?[0-9]+)"
    r"|(?P<decimal>[numkMGTPE]?))",
    re.ASCII,
)


class Rounding(StrEnum):
    """Which way to round a value onto a step."""

    UP = "up"
    DOWN = "down"
    NEAREST = "nearest"


def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity into its exact value.

    >>> parse_quantity("250m"), parse_quantity("1Ki"), parse_quantity("1.5e3")
    (Decimal('0.250'), Decimal('1024'), Decimal('1.5E+3'))

    Ints and finite floats are taken as plain numbers. Raises ``QuantityError``.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(f"quantity {_show(value)}: expected a string or a number")
    if isinstance(value, int):
        return _check_magnitude(Decimal(value), value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"quantity {_show(value)}: not a finite number")
        return _check_magnitude(Decimal(repr(value)), value)
    return _parse_string(value)


def parse_cpu(value: str | int | float) -> float:
    """Parse a CPU quantity into cores: ``"250m"`` -> 0.25, ``"2"`` -> 2.0, ``0.5`` -> 0.5.

    Negative amounts are rejected: no container can request them.
    """
    return _non_negative_float(value, "cpu")


def parse_bytes(value: str | int | float) -> float:
    """Parse a memory or storage quantity into bytes: ``"512Mi"`` -> 536870912.0, ``"1G"`` -> 1e9.

    Negative amounts are rejected.
    """
    return _non_negative_float(value, "memory")


def format_cpu(cores: float) -> str:
    """Format cores as a Kubernetes CPU quantity, rounded up to whole millicores.

    >>> format_cpu(0.25), format_cpu(2.0), format_cpu(0.0001), format_cpu(1.5)
    ('250m', '2', '1m', '1500m')
    """
    millis = _to_steps(_finite_non_negative(cores, "cpu") * 1000.0, 1, Rounding.UP)
    if millis % 1000 == 0:
        return str(millis // 1000)
    return f"{millis}m"


def format_bytes(n: float, *, granularity: int = MIB) -> str:
    """Format bytes as a Kubernetes quantity, never smaller than ``n``.

    A value that is a whole number of KiB is written exactly in the largest binary unit that
    divides it (``"512Mi"``, ``"1536Mi"``, ``"3Ki"``). Anything else is first rounded up to a
    multiple of ``granularity`` bytes (default 1 MiB; 1 keeps plain bytes).

    >>> format_bytes(536870912), format_bytes(1e9), format_bytes(0)
    ('512Mi', '954Mi', '0')
    """
    if isinstance(granularity, bool) or not isinstance(granularity, int) or granularity <= 0:
        raise SettingsError(f"granularity {granularity!r}: expected a positive whole number")
    value = _finite_non_negative(n, "memory")
    whole = _to_steps(value, 1, Rounding.UP)
    if whole % KIB != 0:
        whole = _to_steps(value, granularity, Rounding.UP) * granularity
    for suffix, size in _BINARY_BY_SIZE:
        if whole != 0 and whole % size == 0:
            return f"{whole // size}{suffix}"
    return str(whole)


def round_cpu(
    cores: float, *, step_millicores: int = 1, direction: Rounding = Rounding.UP
) -> float:
    """Round cores onto a grid of ``step_millicores`` (1 or 5 are typical).

    >>> round_cpu(0.2501, step_millicores=5), round_cpu(0.2549, direction=Rounding.DOWN)
    (0.255, 0.254)
    """
    _check_step(step_millicores, "step_millicores")
    value = _finite_non_negative(cores, "cpu")
    steps = _to_steps(value * 1000.0, step_millicores, direction)
    return steps * step_millicores / 1000.0


def round_memory(n: float, *, step_bytes: int = MIB, direction: Rounding = Rounding.UP) -> float:
    """Round bytes onto a grid of ``step_bytes`` (default 1 MiB).

    >>> round_memory(1.5 * 1024**2 + 1), round_memory(1.5 * 1024**2, direction=Rounding.DOWN)
    (2097152.0, 1048576.0)
    """
    _check_step(step_bytes, "step_bytes")
    value = _finite_non_negative(n, "memory")
    return float(_to_steps(value, step_bytes, direction) * step_bytes)


def _parse_string(text: str) -> Decimal:
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise QuantityError(
            f"quantity {_show(text)}: not of the form <number><suffix>, e.g. '250m', '512Mi', '1e3'"
        )
    sign, number = match["sign"], match["number"]
    if match["binary"] is not None:
        power = _BINARY_SUFFIXES[match["binary"]]
        mantissa = Decimal(sign + number)
        # Exact product: room for every digit of the mantissa and of 2**60.
        with localcontext() as ctx:
            ctx.prec = len(number) + 25
            value = mantissa * (1024**power)
    else:
        if match["exponent"] is not None:
            exponent = int(match["exponent"])
            if abs(exponent) > _MAX_EXPONENT:
                raise QuantityError(f"quantity {_show(text)}: exponent out of range")
        else:
            exponent = _DECIMAL_SUFFIXES[match["decimal"]]
        # Built from a string, a Decimal is exact whatever the context precision.
        value = Decimal(f"{sign}{number}E{exponent}")
    return _check_magnitude(value, text)


def _check_magnitude(value: Decimal, original: object) -> Decimal:
    if abs(value) > _MAX_MAGNITUDE:
        raise QuantityError(
            f"quantity {_show(original)}: larger than Kubernetes allows (2**63 - 1)"
        )
    return value


def _show(value: object) -> str:
    """The input as it appears in an error message: its repr, cut short if it is long."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _non_negative_float(value: str | int | float, what: str) -> float:
    exact = parse_quantity(value)
    if exact < 0:
        raise QuantityError(f"{what} quantity {_show(value)}: must not be negative")
    number = float(exact)
    return number if number != 0 else 0.0  # "-0" is zero, not negative zero


def _finite_non_negative(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise QuantityError(f"{what} amount {_show(value)}: expected a number")
    if not 0 <= value <= _MAX_FORMAT:  # false for NaN; exact for huge ints too
        raise QuantityError(f"{what} amount {_show(value)}: expected a number in [0, 2**62]")
    return float(value)


def _check_step(step: int, name: str) -> None:
    if isinstance(step, bool) or not isinstance(step, int) or step <= 0:
        raise SettingsError(f"{name} {step!r}: expected a positive whole number")


def _to_steps(value: float, step: int, direction: Rounding) -> int:
    """How many ``step``-sized units ``value`` is, rounded in ``direction``.

    A quotient within FLOAT_NOISE * max(1, quotient) of an integer is that integer, so float
    noise never adds (or, rounding down, removes) a whole step.
    """
    quotient = value / step
    nearest = round(quotient)
    if abs(quotient - nearest) <= FLOAT_NOISE * max(1.0, abs(quotient)):
        return int(nearest)
    if direction is Rounding.UP:
        return math.ceil(quotient)
    if direction is Rounding.DOWN:
        return math.floor(quotient)
    return math.floor(quotient + 0.5)  # half up, not Python's half-to-even
