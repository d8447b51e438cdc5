{{/*
Command line of `llmscale operator` (the image's entrypoint is `llmscale`). Flags follow
operator/llmscale/controller/cli.py.
*/}}
{{- define "llmscale.operator.args" -}}
- operator
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
- --prometheus-url={{ .Values.prometheus.url }}
- --liveness=http://0.0.0.0:{{ .Values.operator.healthPort }}/healthz
- --metrics-port={{ .Values.operator.metricsPort }}
{{- if gt (int .Values.operator.replicas) 1 }}
- --peering={{ include "llmscale.fullname" . }}
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
{{- if .Values.gpuPrices }}
# GPU catalog name -> USD per GPU-hour (values.gpuPrices), JSON.
- name: LLMSCALE_GPU_PRICES
  value: {{ .Values.gpuPrices | toJson | quote }}
{{- end }}
{{- end -}}
