"""The seam for the autoscaling loop: how it changes the replica count of an LLMDeployment.

The loop (controller/autoscaling/handlers.py) never patches the Deployment itself. It calls
`scale_to(api, namespace, name, replicas, events)`, which records the decision in
`status.desiredReplicas` and runs a reconcile; the reconcile applies that number (clamped to
[minReplicas, maxReplicas]) with the same field manager as everything else, so the loop and
the reconcile can never fight over `spec.replicas` of the Deployment.
"""

from __future__ import annotations

from llmscale.controller.kube import LLMDEPLOYMENT, ClusterApi
from llmscale.controller.reconcile import EventSink, ReconcileResult, reconcile
from llmscale.controller.status import write_status


def scale_to(
    api: ClusterApi, namespace: str, name: str, replicas: int, events: EventSink
) -> ReconcileResult | None:
    """Set status.desiredReplicas and apply it; None when the LLMDeployment is gone.

    Raises what reconcile raises (SpecRejected, RetryLater, TransientError).
    """
    if replicas < 0:
        raise ValueError(f"replicas: {replicas} must be >= 0")
    if write_status(api, namespace, name, {"desiredReplicas": replicas}) is None:
        return None
    body = api.get(*LLMDEPLOYMENT, namespace, name)
    if body is None:
        return None
    return reconcile(body, api, events)
