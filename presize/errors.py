"""One error tree for presize, so callers can decide by meaning rather than by origin.

::

    PresizeError
    ├── QuantityError          a Kubernetes quantity string that does not parse
    ├── WireError              a report or snapshot that cannot be decoded
    │   ├── WireVersionError   a well-formed payload of a version this build does not speak
    │   └── WireSizeError      a payload over the size cap
    ├── TraceError             a trace folder or file that cannot be loaded for replay
    ├── ForecastError          a forecaster asked to do what its history cannot support
    └── SettingsError          a setting outside its documented range

Adapters (kube, docker, cgroup readers) translate library exceptions into these with
``raise ... from exc`` so the cause stays chained. The meaning decides behaviour: a wire
version error means "allow without patch" on the admission path, a quantity error in a user's
pod spec means "leave that container alone".
"""

from __future__ import annotations


class PresizeError(Exception):
    """Root of every error presize raises on purpose."""


class QuantityError(PresizeError, ValueError):
    """A Kubernetes resource quantity (e.g. ``"250m"``, ``"512Mi"``) that does not parse."""


class WireError(PresizeError, ValueError):
    """A report or snapshot payload that cannot be decoded into presize's types."""


class WireVersionError(WireError):
    """A payload whose schema version this build does not understand."""


class WireSizeError(WireError):
    """A payload larger than the configured cap; it is rejected before decoding."""


class TraceError(PresizeError):
    """A trace folder or file that the replay loaders cannot use."""


class ForecastError(PresizeError):
    """A forecaster asked for something its history cannot support."""


class SettingsError(PresizeError, ValueError):
    """A setting outside its documented range."""
