//go:build tools

// Package tools pins the LeaderWorkerSet controller command so `go mod tidy` keeps it;
// llmscale builds it with `go build -o lws sigs.k8s.io/lws/cmd`.
package tools

import _ "sigs.k8s.io/lws/cmd"
