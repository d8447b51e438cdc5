{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "llmscale.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every object name. Truncated to 50 characters so that suffixes such as
"-operator" and "-gateway" still fit the 63-character limit of names and labels.
*/}}
{{- define "llmscale.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "llmscale.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. Deliberately NOT app.kubernetes.io/managed-by=llmscale: that one marks the vLLM objects the operator builds. */}}
{{- define "llmscale.labels" -}}
helm.sh/chart: {{ include "llmscale.chart" . }}
app.kubernetes.io/name: {{ include "llmscale.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llmscale
{{- end -}}

{{/* Selector labels of one component ("operator" or "gateway"); immutable once installed. */}}
{{- define "llmscale.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmscale.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "llmscale.componentLabels" -}}
{{ include "llmscale.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "llmscale.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "llmscale.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create=false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "llmscale.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create -}}
{{- default (printf "%s-gateway" (include "llmscale.fullname" .)) .Values.gateway.serviceAccount.name -}}
{{- else -}}
{{- required "gateway.serviceAccount.name is required when gateway.serviceAccount.create=false" .Values.gateway.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag[@digest]; the tag defaults to the chart's appVersion. */}}
{{- define "llmscale.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
Security context shared by every container of the chart: the restricted Pod Security
Standard (non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp) plus a
read-only root filesystem; the images write only to the emptyDir mounted at /tmp.
*/}}
{{- define "llmscale.podSecurityContext" -}}
runAsNonRoot: true
# pinned to the image's USER (images/operator.Dockerfile), not left to the image
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "llmscale.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}


{{/* A label map as k=v,k2=v2 (sorted), for the operator's --*-pod-labels flags. */}}
{{- define "llmscale.labelList" -}}
{{- $pairs := list -}}
{{- range $k, $v := . }}{{ $pairs = append $pairs (printf "%s=%s" $k $v) }}{{ end -}}
{{- join "," $pairs -}}
{{- end -}}
