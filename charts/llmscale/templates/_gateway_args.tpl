{{/* Command line of `llmscale gateway`; flags follow operator/llmscale/gateway/cli.py. */}}
{{- define "llmscale.gateway.args" -}}
- gateway
- --host=0.0.0.0
- --port={{ .Values.gateway.port }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- range .Values.gateway.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "llmscale.gateway.probes" -}}
# Ready once its watches of LLMDeployments and EndpointSlices have synced.
readinessProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
livenessProbe:
  httpGet:
    path: /health
    port: http
  initialDelaySeconds: 10
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}
