"""The controller's Kubernetes adapter: the only controller code that talks to the API server.

* :class:`KubeOrchestrator` (:mod:`.orchestrator`): watched caches → ``ClusterState``;
  ``pods/resize``, evictions, Events.
* :class:`KubeProfileStore` (:mod:`.profiles`): profiles in ``WorkloadProfile`` status.
* :class:`TokenReviewAuthenticator` (:mod:`.auth`): agents' tokens checked by TokenReview.
* :class:`LeaseElector` (:mod:`.leader`): leader election on a Lease.
* :func:`api_client`, :class:`KubeHttp` (:mod:`.client`): credentials from a kubeconfig or
  the in-cluster ServiceAccount; JSON over one ``aiohttp`` session shared by all of the above.
"""

from controller.kube.auth import TokenReviewAuthenticator
from controller.kube.client import ApiError, KubeHttp, api_client
from controller.kube.leader import LeaseElector
from controller.kube.orchestrator import KubeOrchestrator
from controller.kube.profiles import KubeProfileStore, profile_name

__all__ = [
    "ApiError",
    "KubeHttp",
    "KubeOrchestrator",
    "KubeProfileStore",
    "LeaseElector",
    "TokenReviewAuthenticator",
    "api_client",
    "profile_name",
]
