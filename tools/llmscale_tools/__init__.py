"""llmscale-tools: what tests, benchmarks and the demo need, kept out of the operator.

- `localcluster`: a real Kubernetes control plane on loopback (etcd, kube-apiserver,
  controller-manager, scheduler, KWOK GPU nodes, Prometheus, a pod runner) (`llmscale cluster`);
- `demo`: the end-to-end demo (`llmscale demo`, `make demo`);
- `emulator`: a vLLM-compatible server driven by the replica performance model (`llmscale emulate`);
- `fakes`: in-memory MetricsSource and gateway endpoint sources for tests.

A distribution of its own (tools/pyproject.toml) that depends on llmscale; llmscale never imports
it (import-linter contract). Its commands join the `llmscale` CLI through the entry-point group
`llmscale.commands`.
"""
