"""vLLM's Prometheus metrics, with vLLM's names, labels and histogram buckets.

Two generations (DESIGN.md section 4): `current` is the v1 engine's set (labels `model_name`,
`engine`); `legacy` is what older fleets still export (v0 engine: `vllm:gpu_cache_usage_perc`,
`vllm:time_per_output_token_seconds`, average-throughput gauges, label `model_name` only), so
the operator's adapter can be tested against both. Each emulator owns its CollectorRegistry,
so several emulators (tests) can live in one process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from llmscale_tools.emulator.config import MetricsGeneration

# Bucket boundaries as vLLM defines them (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS_SECONDS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
ITL_BUCKETS_SECONDS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_LATENCY_BUCKETS_SECONDS: tuple[float, ...] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
    40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
FINISHED_REASONS: tuple[str, ...] = ("stop", "length", "abort")
# tokens computed per engine step (vLLM's fixed list)
ITERATION_TOKENS_BUCKETS: tuple[float, ...] = (
    1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
)  # fmt: skip
REQUEST_N_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20)
PREEMPTIONS_BUCKETS: tuple[float, ...] = (1, 2, 3, 4, 5, 10, 20)
SLEEP_STATES: tuple[str, ...] = ("awake", "weights_offloaded", "discard_all")
PROMPT_SOURCES: tuple[str, ...] = ("local_compute", "local_cache_hit", "external_kv_transfer")
CACHED_SOURCES: tuple[str, ...] = ("device", "host", "p2p", "disk", "external_unspecified")
ADMISSION_REASONS: tuple[str, ...] = ("max_num_queued_reqs", "max_num_queued_tokens")


def build_1_2_5_buckets(max_value: int) -> list[float]:
    """1, 2, 5, 10, 20, 50, ... up to max_value: vLLM's token-count buckets."""
    buckets: list[float] = []
    scale = 1
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * scale
            if value > max_value:
                return buckets
            buckets.append(float(value))
        scale *= 10


class VllmMetrics:
    """The registry an emulator's /metrics serves; methods mirror what vLLM records."""

    def __init__(
        self,
        *,
        model_name: str,
        max_model_len: int,
        generation: MetricsGeneration = "current",
        num_gpu_blocks: int = 0,
        block_size: int = 16,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.generation: MetricsGeneration = generation
        legacy = generation == "legacy"
        names = ["model_name"] if legacy else ["model_name", "engine"]
        values = [model_name] if legacy else [model_name, "0"]
        reg = self.registry

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, names, registry=reg).labels(*values)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, names, registry=reg).labels(*values)

        def histogram(name: str, doc: str, buckets: tuple[float, ...] | list[float]) -> Histogram:
            return Histogram(name, doc, names, buckets=buckets, registry=reg).labels(*values)

        self.running = gauge("vllm:num_requests_running", "Number of requests in model execution batches.")
        self.waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
        self._waiting_by_reason: dict[str, Gauge] = {}
        if not legacy:
            by_reason = Gauge(
                "vllm:num_requests_waiting_by_reason",
                "Number of requests waiting to be processed, by the reason they wait.",
                [*names, "reason"],
                registry=reg,
            )
            # the emulated scheduler only ever waits for capacity (batch slots, KV blocks)
            self._waiting_by_reason = {
                reason: by_reason.labels(*values, reason) for reason in ("capacity", "deferred")
            }
        self.kv_cache_usage = gauge(
            "vllm:gpu_cache_usage_perc" if legacy else "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
        )
        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter("vllm:generation_tokens", "Number of generation tokens processed.")
        self.preemptions = counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.")
        success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            [*names, "finished_reason"],
            registry=reg,
        )
        self._success = {reason: success.labels(*values, reason) for reason in FINISHED_REASONS}
        self.ttft = histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            TTFT_BUCKETS_SECONDS,
        )
        self.itl = histogram(
            "vllm:time_per_output_token_seconds" if legacy else "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            ITL_BUCKETS_SECONDS,
        )
        self.e2e = histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            REQUEST_LATENCY_BUCKETS_SECONDS,
        )
        self.queue_time = histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            REQUEST_LATENCY_BUCKETS_SECONDS,
        )
        self.prefill_time = histogram(
            "vllm:request_prefill_time_seconds",
            "Histogram of time spent in PREFILL phase for request.",
            REQUEST_LATENCY_BUCKETS_SECONDS,
        )
        self.decode_time = histogram(
            "vllm:request_decode_time_seconds",
            "Histogram of time spent in DECODE phase for request.",
            REQUEST_LATENCY_BUCKETS_SECONDS,
        )
        token_buckets = build_1_2_5_buckets(max_model_len)
        self.request_prompt_tokens = histogram(
            "vllm:request_prompt_tokens", "Number of prefill tokens processed.", token_buckets
        )
        self.request_generation_tokens = histogram(
            "vllm:request_generation_tokens", "Number of generation tokens processed.", token_buckets
        )
        self._current: _CurrentOnly | None = None
        if not legacy:
            self._current = _CurrentOnly(reg, names, values, max_model_len)
        self._legacy_prompt_throughput: Gauge | None = None
        self._legacy_generation_throughput: Gauge | None = None
        if legacy:
            self._legacy_prompt_throughput = gauge(
                "vllm:avg_prompt_throughput_toks_per_s", "Average prefill throughput in tokens/s."
            )
            self._legacy_generation_throughput = gauge(
                "vllm:avg_generation_throughput_toks_per_s", "Average generation throughput in tokens/s."
            )
        cache_info = Gauge(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            ["block_size", "engine", "num_gpu_blocks"],
            registry=reg,
        )
        cache_info.labels(str(block_size), "0", str(num_gpu_blocks)).set(1)

    def set_scheduler_state(self, *, running: int, waiting: int, kv_cache_usage: float) -> None:
        self.running.set(running)
        self.waiting.set(waiting)
        if self._waiting_by_reason:
            self._waiting_by_reason["capacity"].set(waiting)
        self.kv_cache_usage.set(kv_cache_usage)

    def set_throughput(self, *, prompt_tokens_per_second: float, generation_tokens_per_second: float) -> None:
        """Only the legacy generation exports these averages; a no-op otherwise."""
        if self._legacy_prompt_throughput is not None and self._legacy_generation_throughput is not None:
            self._legacy_prompt_throughput.set(prompt_tokens_per_second)
            self._legacy_generation_throughput.set(generation_tokens_per_second)

    def record_finished(
        self,
        *,
        finished_reason: str,
        prompt_tokens: int,
        generation_tokens: int,
        e2e_seconds: float,
        queue_seconds: float,
        prefill_seconds: float,
        decode_seconds: float,
        preemptions: int = 0,
    ) -> None:
        self._success[finished_reason].inc()
        self.e2e.observe(e2e_seconds)
        self.queue_time.observe(queue_seconds)
        self.prefill_time.observe(prefill_seconds)
        self.decode_time.observe(decode_seconds)
        self.request_prompt_tokens.observe(prompt_tokens)
        self.request_generation_tokens.observe(generation_tokens)
        if self._current is not None:
            self._current.record_finished(
                prompt_tokens=prompt_tokens,
                generation_tokens=generation_tokens,
                prefill_seconds=prefill_seconds,
                decode_seconds=decode_seconds,
                preemptions=preemptions,
            )

    def record_step(self, batch_tokens: int) -> None:
        """One engine step computed `batch_tokens` tokens (prefill chunks plus decodes)."""
        if self._current is not None and batch_tokens > 0:
            self._current.iteration_tokens.observe(batch_tokens)

    def record_request_params(self, *, n: int, max_tokens: int) -> None:
        if self._current is not None:
            self._current.params_n.observe(n)
            self._current.params_max_tokens.observe(max_tokens)
            self._current.max_num_generation_tokens.observe(max_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _CurrentOnly:
    """Families only the current (v1) generation has, with vLLM's labels and buckets.

    Prefix caching, multimodal caches, KV transfer, admission limits and sleep mode are not
    modelled: their counters stay where vLLM leaves them when the feature is idle (queries
    count every prompt token, hits stay 0, the engine is "awake").
    """

    def __init__(
        self, reg: CollectorRegistry, names: list[str], values: list[str], max_model_len: int
    ) -> None:
        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, names, registry=reg).labels(*values)

        def histogram(name: str, doc: str, buckets: tuple[float, ...] | list[float]) -> Histogram:
            return Histogram(name, doc, names, buckets=buckets, registry=reg).labels(*values)

        sleep = Gauge("vllm:engine_sleep_state", "Engine sleep state", [*names, "sleep_state"], registry=reg)
        for state in SLEEP_STATES:
            sleep.labels(*values, state).set(1 if state == "awake" else 0)
        self.prefix_queries = counter(
            "vllm:prefix_cache_queries", "Prefix cache queries, in terms of tokens."
        )
        self.prefix_hits = counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of tokens.")
        counter("vllm:external_prefix_cache_queries", "External prefix cache queries, in terms of tokens.")
        counter("vllm:external_prefix_cache_hits", "External prefix cache hits, in terms of tokens.")
        counter("vllm:mm_cache_queries", "Multi-modal cache queries, in terms of items.")
        counter("vllm:mm_cache_hits", "Multi-modal cache hits, in terms of items.")
        by_source = Counter(
            "vllm:prompt_tokens_by_source", "Prompt tokens by source.", [*names, "source"], registry=reg
        )
        self.prompt_by_source = {source: by_source.labels(*values, source) for source in PROMPT_SOURCES}
        counter("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external).")
        cached_by_source = Counter(
            "vllm:prompt_tokens_cached_by_source",
            "Number of cached prompt tokens by source.",
            [*names, "source"],
            registry=reg,
        )
        for source in CACHED_SOURCES:
            cached_by_source.labels(*values, source)
        # vLLM counts admission rejections per model, without the engine label
        rejections = Counter(
            "vllm:admission_rejections",
            "Requests rejected at admission, by the limit they hit.",
            ["model_name", "reason"],
            registry=reg,
        )
        for reason in ADMISSION_REASONS:
            rejections.labels(values[0], reason)
        token_buckets = build_1_2_5_buckets(max_model_len)
        self.iteration_tokens = histogram(
            "vllm:iteration_tokens_total",
            "Histogram of number of tokens per engine_step.",
            ITERATION_TOKENS_BUCKETS,
        )
        self.max_num_generation_tokens = histogram(
            "vllm:request_max_num_generation_tokens",
            "Histogram of maximum number of requested generation tokens.",
            token_buckets,
        )
        self.params_n = histogram(
            "vllm:request_params_n", "Histogram of the n request parameter.", REQUEST_N_BUCKETS
        )
        self.params_max_tokens = histogram(
            "vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", token_buckets
        )
        self.tpot = histogram(
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            ITL_BUCKETS_SECONDS,
        )
        self.inference_time = histogram(
            "vllm:request_inference_time_seconds",
            "Histogram of time spent in RUNNING phase for request.",
            REQUEST_LATENCY_BUCKETS_SECONDS,
        )
        self.num_preemptions = histogram(
            "vllm:request_num_preemptions", "Number of preemptions per request.", PREEMPTIONS_BUCKETS
        )
        self.prefill_kv_computed = histogram(
            "vllm:request_prefill_kv_computed_tokens",
            "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
            token_buckets,
        )

    def record_finished(
        self,
        *,
        prompt_tokens: int,
        generation_tokens: int,
        prefill_seconds: float,
        decode_seconds: float,
        preemptions: int,
    ) -> None:
        self.prefix_queries.inc(prompt_tokens)
        self.prompt_by_source["local_compute"].inc(prompt_tokens)
        self.prefill_kv_computed.observe(prompt_tokens)
        self.inference_time.observe(prefill_seconds + decode_seconds)
        self.num_preemptions.observe(preemptions)
        if generation_tokens > 1:
            # vLLM's per-request TPOT: decode time over the tokens after the first
            self.tpot.observe(decode_seconds / (generation_tokens - 1))
