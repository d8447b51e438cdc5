"""Pinned versions of everything the local control plane builds or installs."""

from __future__ import annotations

# Kubernetes release the wrapper module (localcluster/gomod/go.mod) requires; the version
# stamp (gitVersion/gitMajor/gitMinor) must agree with it.
KUBERNETES_VERSION = "v1.34.4"
# The etcd server version Kubernetes 1.34 pins (localcluster/gomod/go.mod).
ETCD_VERSION = "v3.6.4"
# Installed with `go install` in their own module graphs, never in the wrapper module.
KWOK_VERSION = "v0.7.0"
HELM_VERSION = "v3.22.0"

KWOK_PACKAGE = "sigs.k8s.io/kwok/cmd/kwok"
HELM_PACKAGE = "helm.sh/helm/v3/cmd/helm"

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
ETCD_PACKAGE = "go.etcd.io/etcd/server/v3"
