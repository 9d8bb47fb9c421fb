"""The controller's errors, under presize's one tree.

::

    PresizeError (presize.errors)
    └── ControllerError
        ├── StoreError          a profile could not be read or written (kept in memory, retried)
        ├── AuthError           a report's credentials could not be checked
        └── OrchestratorError   the orchestrator's API answered in a way the adapter cannot use

Expected action outcomes (a pod gone, a budget refusing an eviction) are not errors: they come
back as :class:`controller.orchestrator.ActionResult` values.
"""

from __future__ import annotations

from presize.errors import PresizeError


class ControllerError(PresizeError):
    """Root of the controller's own errors."""


class StoreError(ControllerError):
    """A profile could not be loaded from or saved to its store."""


class AuthError(ControllerError):
    """The credentials of a request could not be checked (not: they were wrong)."""


class OrchestratorError(ControllerError):
    """The orchestrator's API answered in a way the adapter cannot interpret."""
