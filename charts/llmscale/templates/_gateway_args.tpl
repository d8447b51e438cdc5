{{/* Command line of `llmscale gateway`; flags as in operator/llmscale/gateway/cli.py. */}}
{{- define "llmscale.gateway.args" -}}
- gateway
- --host=0.0.0.0
- --port={{ .Values.gateway.port }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
- --queue-size={{ .Values.gateway.queueSize }}
- --hold-timeout={{ .Values.gateway.holdTimeoutSeconds }}
- --request-timeout={{ .Values.gateway.requestTimeoutSeconds }}
- --shutdown-timeout={{ .Values.gateway.shutdownTimeoutSeconds }}
{{- if .Values.gateway.auth.enabled }}
- --auth=api-key
- --api-key-namespace={{ .Release.Namespace }}
- --rate-limit={{ .Values.gateway.auth.rateLimitPerMinute }}
- --api-key-refresh={{ .Values.gateway.auth.refreshSeconds }}
{{- else }}
- --auth=none
{{- end }}
{{- range .Values.gateway.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "llmscale.gateway.probes" -}}
# /health of the gateway's HTTP server (operator/llmscale/gateway/app.py).
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
