{{/*
RBAC rules, one comment per rule saying why it exists. Deliberately absent: Secrets for the operator (the HF
token reaches vLLM pods via secretKeyRef, which the kubelet resolves, not the operator; the
gateway reads its API key Secrets through a Role in the release namespace only, rbac.yaml), nodes,
pods/create (pods come from the Deployments the operator owns), pods/exec, RBAC objects,
escalate/bind/impersonate, and every verb on objects the operator does not build.
*/}}

{{/* Operator rules on namespaced resources: in a ClusterRole (all namespaces) or in one Role per watched namespace. */}}
{{- define "llmscale.operator.namespacedRules" -}}
# The custom resource itself: kopf watches it and adds/removes its finalizer and progress
# annotations with PATCH. No create/delete: users own LLMDeployments.
- apiGroups: ["llmscale.dev"]
  resources: ["llmdeployments"]
  verbs: ["get", "list", "watch", "patch"]
# Status (replicas, conditions, decisions, cost) is written through the status subresource.
- apiGroups: ["llmscale.dev"]
  resources: ["llmdeployments/status"]
  verbs: ["get", "patch", "update"]
# Read the /scale subresource that `kubectl scale`, HPA or KEDA may have written.
- apiGroups: ["llmscale.dev"]
  resources: ["llmdeployments/scale"]
  verbs: ["get"]
# The vLLM Deployment of each LLMDeployment: created, reconciled by apply/patch, scaled, and
# removed when the spec no longer needs it (owner references garbage-collect the rest).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# A Deployment's /scale: waking a deployment from zero sets its replicas in one PATCH before the
# full reconcile (without it the wake falls back to the slower reconcile and logs a 403).
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["get", "patch", "update"]
# The LeaderWorkerSet of each multi-node LLMDeployment (a replica spans several nodes): the same
# verbs as its Deployment. Harmless without the LeaderWorkerSet CRD (the operator then reports
# LeaderWorkerSetNotInstalled).
- apiGroups: ["leaderworkerset.x-k8s.io"]
  resources: ["leaderworkersets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# A LeaderWorkerSet's /scale: waking a multi-node deployment from zero sets its group count in
# one PATCH before the full reconcile.
- apiGroups: ["leaderworkerset.x-k8s.io"]
  resources: ["leaderworkersets/scale"]
  verbs: ["get", "patch", "update"]
# The Service in front of each vLLM Deployment (its EndpointSlices feed the gateway).
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# The PodDisruptionBudget that keeps voluntary evictions from draining a warm deployment.
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# vLLM pods: watched to measure cold start (creation -> Ready) and patched with
# controller.kubernetes.io/pod-deletion-cost so scale-down removes idle replicas first.
# Never create/delete: the ReplicaSet owns the pods.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "patch"]
# The NetworkPolicy of each LLMDeployment: only the gateway and Prometheus reach its vLLM pods
# (--network-policy, chart value networkPolicy.enabled).
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# The optional ConfigMap that carries a model's config.json when the name is not in the catalog.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
# Events explain every scaling decision and strategy change (kopf posts core/v1 Events).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
# The same Events through the newer events.k8s.io API, for clients that use it.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.monitoring.vllmPodMonitors }}
# PodMonitor next to each vLLM Deployment so a Prometheus Operator scrapes it
# (monitoring.vllmPodMonitors).
- apiGroups: ["monitoring.coreos.com"]
  resources: ["podmonitors"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
{{- end }}
{{- if and (gt (int .Values.operator.replicas) 1) .Values.watchNamespaces }}
# kopf peering of a namespace-scoped operator (replicas > 1): one KopfPeering per namespace
# in which the operator pods announce themselves, so only one of them handles objects.
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end -}}

{{/* Operator rules on cluster-scoped resources (always a ClusterRole). */}}
{{- define "llmscale.operator.clusterRules" -}}
# kopf watches CRDs to notice its resources (and the PodMonitor kind) appearing or changing
# after it started; denied, it only learns them at startup. Read-only. (Whether PodMonitor
# exists is asked through API discovery, which every authenticated client may read.)
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if .Values.watchNamespaces }}
# kopf given --namespace names lists and watches namespaces to match them (it treats them as
# patterns); denied, it retries with errors at startup and never notices a watched namespace
# that is deleted and re-created. A cluster-wide kopf does not need this.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- else }}
{{- if gt (int .Values.operator.replicas) 1 }}
# kopf peering of a cluster-wide operator (replicas > 1): the ClusterKopfPeering object in
# which the operator pods announce themselves, so only one of them handles objects.
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end }}
{{- end -}}

{{/* Gateway rules: namespaced resources only. */}}
{{- define "llmscale.gateway.rules" -}}
# Which deployments exist and their model names (routing table); PATCH only to set the
# llmscale.dev/activation-requested-at annotation that wakes a deployment scaled to zero.
- apiGroups: ["llmscale.dev"]
  resources: ["llmdeployments"]
  verbs: ["get", "list", "watch", "patch"]
# Ready vLLM endpoints to route to (EndpointSlices of the per-deployment Services).
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch"]
{{- end -}}
