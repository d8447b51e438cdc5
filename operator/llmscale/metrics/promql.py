"""The PromQL the adapter sends: one query per signal, covering every deployment at once.

Every query aggregates `by (namespace, llmdeployment)`, the target labels Prometheus attaches to
each scraped vLLM pod (from the pod's namespace and its `llmscale.dev/deployment` label), so one
round trip per signal serves every deployment in the cluster.

Two generations of vLLM metric names are understood. Where a metric was renamed, the *per-pod*
series of both names are combined with `or` before aggregating:

    sum by (namespace, llmdeployment, le) (rate(NEW_bucket[W]) or rate(OLD_bucket[W]))

`or` matches label sets without the metric name (and `rate` drops the name anyway), so a pod that
exports both names during the deprecation period is counted once (the new name wins), while a
deployment halfway through a rolling upgrade (some pods old, some new) still sees all its pods.
Taking `A or B` *after* aggregation would silently drop the old pods of such a deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

GROUP_LABELS = "namespace, llmdeployment"

# (current name, legacy name) pairs; a None legacy name means the metric was never renamed.
TTFT_HISTOGRAM = ("vllm:time_to_first_token_seconds", None)
ITL_HISTOGRAM = ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")
QUEUE_TIME_HISTOGRAM = ("vllm:request_queue_time_seconds", None)
KV_CACHE_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")

# The gateway's own series (llmscale.gateway.metrics exports them with these labels).
GATEWAY_ARRIVALS = "llmscale_gateway_arrivals_total"
GATEWAY_QUEUE_DEPTH = "llmscale_gateway_queue_depth"

# The largest finite bucket bound of each vLLM histogram. When a quantile lands in the +Inf
# bucket, histogram_quantile answers +Inf; the adapter reports this bound instead (a lower bound
# of the true value, and a finite number that survives JSON status and arithmetic).
LARGEST_FINITE_BUCKET_SECONDS: dict[str, float] = {
    "ttft_p95_seconds": 2560.0,
    "itl_p95_seconds": 80.0,
    "queue_time_p95_seconds": 7680.0,
}


@dataclass(frozen=True)
class QueryWindows:
    """Windows and quantile of the per-tick queries.

    `rate_window_seconds` must span at least four scrapes (rate() needs two samples and
    tolerates a missed scrape): with the local cluster's 1 s scrape interval 30 s is plenty; with
    a production 15 s scrape use 60 s or more.
    """

    rate_window_seconds: float = 30.0
    quantile: float = 0.95

    def __post_init__(self) -> None:
        if not self.rate_window_seconds > 0:
            raise ValueError(f"rate_window_seconds: {self.rate_window_seconds!r} must be > 0")
        if not 0.0 < self.quantile < 1.0:
            raise ValueError(f"quantile: {self.quantile!r} must be between 0 and 1 (exclusive)")


def duration(seconds: float) -> str:
    """A PromQL duration for a whole number of seconds (at least 1 s)."""
    return f"{max(1, round(seconds))}s"


def _rate_of(names: tuple[str, str | None], suffix: str, window: str) -> str:
    current, legacy = names
    expression = f"rate({current}{suffix}[{window}])"
    if legacy is not None:
        expression = f"{expression} or rate({legacy}{suffix}[{window}])"
    return expression


def _gauge_of(names: tuple[str, str | None]) -> str:
    current, legacy = names
    return current if legacy is None else f"({current} or {legacy})"


def histogram_quantile(names: tuple[str, str | None], windows: QueryWindows) -> str:
    rates = _rate_of(names, "_bucket", duration(windows.rate_window_seconds))
    return f"histogram_quantile({windows.quantile}, sum by ({GROUP_LABELS}, le) ({rates}))"


def counter_rate(counter: str, window_seconds: float) -> str:
    return f"sum by ({GROUP_LABELS}) (rate({counter}[{duration(window_seconds)}]))"


def own_deployment_labels(expression: str) -> str:
    """Restore the gateway's own `namespace`/`llmdeployment` labels when a scrape renamed them.

    The gateway labels its series with the deployment a request was for. Scraped without
    `honor_labels` (a PodMonitor or pod discovery), the target's own `namespace` label wins and
    the gateway's becomes `exported_namespace` (same for `llmdeployment` if the target has one).
    `label_replace` copies a non-empty `exported_*` value back; with honor_labels there is no
    `exported_*` label and the series passes unchanged, so both setups give the same answer.
    """
    for label in ("namespace", "llmdeployment"):
        expression = f'label_replace({expression}, "{label}", "$1", "exported_{label}", "(.+)")'
    return expression


def gateway_counter_rate(counter: str, window_seconds: float) -> str:
    rate = own_deployment_labels(f"rate({counter}[{duration(window_seconds)}])")
    return f"sum by ({GROUP_LABELS}) ({rate})"


def current_queries(windows: QueryWindows) -> dict[str, str]:
    """signal name -> PromQL, for the per-tick snapshot (see llmscale.metrics.types.SIGNAL_NAMES)."""
    window = windows.rate_window_seconds
    return {
        "request_rate_rps": counter_rate("vllm:request_success_total", window),
        "prompt_tokens_per_second": counter_rate("vllm:prompt_tokens_total", window),
        "generation_tokens_per_second": counter_rate("vllm:generation_tokens_total", window),
        "num_requests_waiting": f"sum by ({GROUP_LABELS}) (vllm:num_requests_waiting)",
        "num_requests_running": f"sum by ({GROUP_LABELS}) (vllm:num_requests_running)",
        "kv_cache_usage": f"avg by ({GROUP_LABELS}) ({_gauge_of(KV_CACHE_USAGE)})",
        "ttft_p95_seconds": histogram_quantile(TTFT_HISTOGRAM, windows),
        "itl_p95_seconds": histogram_quantile(ITL_HISTOGRAM, windows),
        "queue_time_p95_seconds": histogram_quantile(QUEUE_TIME_HISTOGRAM, windows),
        "gateway_arrivals_rps": gateway_counter_rate(GATEWAY_ARRIVALS, window),
        "gateway_queue_depth": f"sum by ({GROUP_LABELS}) ({own_deployment_labels(GATEWAY_QUEUE_DEPTH)})",
    }


def history_queries(step_seconds: float) -> dict[str, str]:
    """Demand series for range queries: the rate window equals the step so no sample is skipped."""
    return {
        "request_rate_rps": counter_rate("vllm:request_success_total", step_seconds),
        "prompt_tokens_per_second": counter_rate("vllm:prompt_tokens_total", step_seconds),
        "generation_tokens_per_second": counter_rate("vllm:generation_tokens_total", step_seconds),
        "gateway_arrivals_rps": gateway_counter_rate(GATEWAY_ARRIVALS, step_seconds),
    }
