"""What one emulated vLLM replica serves: model, GPU, limits, metric names, time scale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmscale.errors import UserInputError

MetricsGeneration = Literal["current", "legacy"]
METRICS_GENERATIONS: tuple[str, ...] = ("current", "legacy")

DEFAULT_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
DEFAULT_GPU = "H100-80GB"
DEFAULT_PORT = 8000
# vLLM's own default when neither the request nor the server says otherwise (OpenAI legacy
# completions default to 16 tokens).
DEFAULT_COMPLETION_MAX_TOKENS = 16
# A real chat model stops at EOS; the emulator has no EOS, so an open-ended chat request
# generates this many tokens unless the request sets max_tokens / max_completion_tokens.
DEFAULT_CHAT_MAX_TOKENS = 128


@dataclass(frozen=True)
class EmulatorConfig:
    """The settings of one emulated replica (from flags or from the pod's environment).

    `served_model_names` are the names clients may put in `model` (vLLM's
    `--served-model-name` accepts several; the first one labels the metrics).
    `speedup` makes model time run that many times faster than wall time (tests and
    demos); latencies in /metrics are reported in model seconds.
    """

    model: str = DEFAULT_MODEL
    served_model_names: tuple[str, ...] = ()
    gpu: str = DEFAULT_GPU
    tensor_parallel_size: int | None = None
    max_model_len: int | None = None
    max_num_seqs: int | None = None  # vLLM --max-num-seqs (default: the model's, 256)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    metrics_names: MetricsGeneration = "current"
    speedup: float = 1.0
    drain_timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.metrics_names not in METRICS_GENERATIONS:
            raise UserInputError(
                f"--metrics-names: value {self.metrics_names!r} is unknown; expected one of "
                f"{', '.join(METRICS_GENERATIONS)}"
            )
        if not self.speedup > 0:
            raise UserInputError(f"--speedup: value {self.speedup!r} must be > 0")
        if self.tensor_parallel_size is not None and self.tensor_parallel_size < 1:
            raise UserInputError(f"--tensor-parallel-size: value {self.tensor_parallel_size!r} must be >= 1")
        if self.max_num_seqs is not None and self.max_num_seqs < 1:
            raise UserInputError(f"--max-num-seqs: value {self.max_num_seqs!r} must be >= 1")
        if self.max_model_len is not None and self.max_model_len < 2:
            raise UserInputError(f"--max-model-len: value {self.max_model_len!r} must be >= 2")
        if not 0 <= self.port <= 65535:
            raise UserInputError(f"--port: value {self.port!r} is not a TCP port")

    @property
    def primary_name(self) -> str:
        """The name /v1/models lists first and the metrics carry as `model_name`."""
        return self.served_model_names[0] if self.served_model_names else self.model

    @property
    def accepted_names(self) -> tuple[str, ...]:
        return self.served_model_names or (self.model,)
