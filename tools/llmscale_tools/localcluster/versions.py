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

# The LeaderWorkerSet controller (multi-node replicas), built from gomod/lws/go.mod (package data),
# a module graph of its own that requires only sigs.k8s.io/lws at this version.
LWS_VERSION = "v0.8.0"
LWS_MODULE = "sigs.k8s.io/lws"
LWS_PACKAGE = "sigs.k8s.io/lws/cmd"
# Kept next to the binary in the cache: the CRD of the same version, from the module's source.
LWS_CRD_SOURCE = "config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml"
LWS_CRD_FILE = "lws-crd.yaml"
