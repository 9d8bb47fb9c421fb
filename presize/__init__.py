"""presize: predictive right-sizing for Kubernetes containers.

This package is the shared core: pure domain logic with no network, no cluster access and no
asyncio. The agent, controller and webhook packages build on it; it imports none of them.
"""

__version__ = "0.1.0"
