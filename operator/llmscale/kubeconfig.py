"""Where the Kubernetes client's configuration comes from, for every process that talks to the API."""

from __future__ import annotations

from kubernetes import config

from llmscale.errors import EnvironmentSetupError


def load_kube_config() -> None:
    """In-cluster config in a pod, else $KUBECONFIG / ~/.kube/config; neither is one clear error."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        try:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        except (config.ConfigException, OSError) as exc:
            raise EnvironmentSetupError(
                f"no Kubernetes configuration: set KUBECONFIG or run in a pod ({exc})"
            ) from exc
