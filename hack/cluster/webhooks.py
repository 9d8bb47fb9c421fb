"""presize's MutatingWebhookConfiguration registered by URL on loopback (tests and the demo).

Never a Service: nothing here may dial a ClusterIP, so the API server calls the webhook process
at ``https://127.0.0.1:<port>/mutate``; the webhook patches its own CA into ``caBundle`` when it
starts (or the caller sets it). The selector is the chart's: opted-in namespaces only, never
kube-system.
"""

from __future__ import annotations

from typing import Any


def loopback_webhook_configuration(name: str, port: int, *, timeout_s: int = 3) -> dict[str, Any]:
    """The configuration object, ready to create."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "pods.presize.io",
                "clientConfig": {"url": f"https://127.0.0.1:{port}/mutate"},
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "presize.io/enabled", "operator": "In", "values": ["true"]},
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "NotIn",
                            "values": ["kube-system"],
                        },
                    ]
                },
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": timeout_s,
            }
        ],
    }
