"""The one way the operator posts Kubernetes Events: `EventPoster`, an `EventSink` on one LLMDeployment.

Reconciles (in kopf's handlers) and the scaling loop both post through it, straight to the
core/v1 Events API with source component `llmscale`, so `kubectl describe llmdeployment` shows
them together and they work the same inside and outside a kopf handler (worker threads,
daemons, tests with a fake `CoreV1Api`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Final

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from llmscale.api import defaults
from llmscale.errors import TransientError
from llmscale.timestamps import rfc3339

EVENT_SOURCE: Final = "llmscale"
MAX_MESSAGE_CHARS: Final = 1024


class EventPoster:
    """Posts core/v1 Events about one LLMDeployment (implements reconcile's EventSink)."""

    def __init__(self, core: Any, namespace: str, name: str, uid: str | None) -> None:
        self.core, self.namespace, self.name, self.uid = core, namespace, name, uid

    def emit(self, type_: str, reason: str, message: str) -> None:
        now = rfc3339(time.time())
        body = {
            "metadata": {"name": f"{self.name}.{uuid.uuid4().hex[:12]}", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": f"{defaults.API_GROUP}/{defaults.API_VERSION}",
                "kind": defaults.KIND,
                "name": self.name,
                "namespace": self.namespace,
                "uid": self.uid,
            },
            "reason": reason,
            "message": message[:MAX_MESSAGE_CHARS],
            "type": type_,
            "source": {"component": EVENT_SOURCE},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(self.namespace, body)
        except (ApiException, HTTPError) as exc:
            status = f"HTTP {exc.status} {exc.reason}" if isinstance(exc, ApiException) else str(exc)
            raise TransientError(f"post event on {self.namespace}/{self.name}: {status}") from exc
