"""The agent's own branch of the presize error tree.

::

    PresizeError                    (presize.errors)
    └── AgentError
        ├── CgroupParseError        a cgroup file whose text is truncated or malformed
        ├── CgroupReadError         a cgroup file that exists but cannot be read
        └── ProcParseError          a /proc file (net/dev) whose text is truncated or malformed

A cgroup that vanished between discovery and reading is *not* an error: containers come and go
every second on a busy node, so the reader reports it as a normal "gone" outcome. What remains
here is what the sampling loop logs and counts, then carries on with the next container.
"""

from __future__ import annotations

from presize.errors import PresizeError


class AgentError(PresizeError):
    """Root of the errors the node agent raises on purpose."""


class CgroupParseError(AgentError, ValueError):
    """A cgroup file's text that does not have the kernel's shape (truncated, garbled)."""


class CgroupReadError(AgentError):
    """An I/O failure on a cgroup file other than the cgroup having gone."""


class ProcParseError(AgentError, ValueError):
    """A ``/proc`` file's text that does not have the kernel's shape (truncated, garbled)."""
