{{/*
Command line of `llmscale operator` (the image's entrypoint is `llmscale`); flags as in
operator/llmscale/controller/cli.py. Settings of the scaling loop go through its LLMSCALE_*
environment variables (operator/llmscale/controller/autoscaling/settings.py), which the
operator reads whether or not the matching flags are given.
*/}}
{{- define "llmscale.operator.args" -}}
- operator
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
- --liveness=http://0.0.0.0:{{ .Values.operator.healthPort }}/healthz
{{- if gt (int .Values.operator.replicas) 1 }}
- --peering={{ include "llmscale.fullname" . }}
{{- end }}
{{- if .Values.networkPolicy.enabled }}
- --network-policy=on
- --gateway-namespace={{ .Release.Namespace }}
- --gateway-pod-labels={{ include "llmscale.labelList" (include "llmscale.selectorLabels" (dict "root" . "component" "gateway") | fromYaml) }}
- --prometheus-namespace={{ .Values.networkPolicy.prometheus.namespace }}
- --prometheus-pod-labels={{ include "llmscale.labelList" .Values.networkPolicy.prometheus.podLabels }}
{{- else }}
- --network-policy=off
{{- end }}
{{- range .Values.operator.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "llmscale.operator.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: LLMSCALE_PROMETHEUS_URL
  value: {{ .Values.prometheus.url | quote }}
# The operator's /metrics: on all interfaces of the pod, so Prometheus can scrape it.
- name: LLMSCALE_OPERATOR_METRICS_PORT
  value: {{ .Values.operator.metricsPort | quote }}
- name: LLMSCALE_OPERATOR_METRICS_HOST
  value: "0.0.0.0"
{{- if and .Values.gateway.enabled .Values.operator.readGatewayDirectly }}
# Every gateway pod's /metrics, read on each tick: the headless Service resolves to all of them.
- name: LLMSCALE_GATEWAY_METRICS_URLS
  value: "http://{{ include "llmscale.fullname" . }}-gateway-pods.{{ .Release.Namespace }}.svc:{{ .Values.gateway.port }}"
{{- end }}
{{- if .Values.gpuPrices }}
# GPU catalog name -> USD per GPU-hour (values.gpuPrices), JSON.
- name: LLMSCALE_GPU_PRICES
  value: {{ .Values.gpuPrices | toJson | quote }}
{{- end }}
{{- end -}}
