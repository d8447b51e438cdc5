"""`LLMDeployment.spec`: what a platform team declares.

Field descriptions are the API documentation (`kubectl explain`); each carries its unit and an
example. Cross-field rules are CEL (`x-kubernetes-validations`) so the API server rejects them
with a message naming the field and the value; the same rules are mirrored in pydantic
validators so the operator, the CLI and the tests agree with the API server.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from llmscale.api import defaults
from llmscale.api.base import ApiModel, cel_rule, cel_rules, cel_text
from llmscale.api.duration import DURATION_PATTERN, parse_duration_seconds

# GPU catalog names (the planner's GPU_CATALOG keys; a unit test keeps them in step).
GpuProduct = Literal["H200", "H100-80GB", "A100-80GB", "A100-40GB", "L40S", "L4", "A10G", "T4", "RTX-4090"]
GPU_PRODUCTS: Final[tuple[str, ...]] = GpuProduct.__args__  # type: ignore[attr-defined]
Quantization = Literal[
    "awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "bitsandbytes", "compressed-tensors"
]
Dtype = Literal["auto", "bfloat16", "float16", "float32", "half", "float"]
Strategy = Literal["Auto", "Warm", "Autoscaled", "ScaleToZero"]
STRATEGIES: Final[tuple[str, ...]] = Strategy.__args__  # type: ignore[attr-defined]
# Strategies whose replica count the autoscaling loop owns (controller/autoscaling/handlers.py).
LOOP_OWNED_STRATEGIES: Final = frozenset({"Auto", "Autoscaled", "ScaleToZero"})
ScalingMode = Literal["Active", "DryRun"]

Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN, max_length=32)]
ShortString = Annotated[str, StringConstraints(min_length=1, max_length=253)]
Arg = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
# Kubernetes resource quantity (`16Gi`, `500m`, `4`).
Quantity = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$")]
StringMap = Annotated[dict[str, Annotated[str, StringConstraints(max_length=4096)]], Field(max_length=64)]
Opaque = dict[str, Any]

# vLLM flags the operator sets from spec fields; setting them in extraArgs would conflict.
MANAGED_ENGINE_FLAGS: Final = (
    "host",
    "port",
    "model",
    "served-model-name",
    "revision",
    "tensor-parallel-size",
    "pipeline-parallel-size",
    "max-model-len",
    "gpu-memory-utilization",
    "quantization",
    "dtype",
)
MANAGED_FLAG_REGEX: Final = r"^(--(" + "|".join(MANAGED_ENGINE_FLAGS) + r")|-tp|-pp)(=.*)?$"
# Labels the operator relies on for selectors and Prometheus relabelling.
MANAGED_POD_LABELS: Final = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "llmscale.dev/deployment",
)


class ConfigMapKeyRef(ApiModel):
    name: ShortString = Field(
        description="ConfigMap name in the LLMDeployment's namespace.", examples=["my-config"]
    )
    key: ShortString = Field(
        default=defaults.ARCHITECTURE_CONFIGMAP_KEY,
        description="Key in the ConfigMap's data holding a Hugging Face config.json.",
        examples=["config.json"],
    )


class ModelSpec(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel_rule(
                "!(has(self.architecture) && has(self.architectureConfigMap))",
                "'spec.model: set architecture or architectureConfigMap (' + self.architectureConfigMap.name"
                " + '), not both'",
                message="spec.model: set architecture or architectureConfigMap, not both",
            )
        )
    }

    name: ShortString = Field(
        description="Model to serve: a Hugging Face repository id or a planner catalog name. Passed to"
        " `vllm serve`.",
        examples=["meta-llama/Llama-3.1-8B-Instruct"],
    )
    served_name: ShortString | None = Field(
        default=None,
        description="Model name clients send in OpenAI requests (`--served-model-name`). Defaults to `name`.",
        examples=["llama-8b"],
    )
    revision: ShortString | None = Field(
        default=None,
        description="Hugging Face revision (branch, tag or commit) to load (`--revision`). Defaults to"
        " the repository's main branch.",
        examples=["0e9e39f249a16976918f6564b8830bc894c89659"],
    )
    architecture: Opaque | None = Field(
        default=None,
        description="Hugging Face config.json fields of the model (hidden_size, num_hidden_layers, ...)"
        " so the planner can size models it does not know.",
        examples=[{"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32}],
    )
    architecture_config_map: ConfigMapKeyRef | None = Field(
        default=None,
        description="ConfigMap key holding the model's config.json, as an alternative to `architecture`.",
        examples=[{"name": "llama-config", "key": "config.json"}],
    )

    @model_validator(mode="after")
    def _one_architecture_source(self) -> ModelSpec:
        if self.architecture is not None and self.architecture_config_map is not None:
            raise ValueError(
                "spec.model: set architecture or architectureConfigMap"
                f" ({self.architecture_config_map.name}), not both"
            )
        return self


class EngineSpec(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel_rule(
                f"!has(self.extraArgs) || !self.extraArgs.exists(a, a.matches('{MANAGED_FLAG_REGEX}'))",
                f"'spec.engine.extraArgs: ' + self.extraArgs.filter(a, a.matches('{MANAGED_FLAG_REGEX}'))[0]"
                " + ' is set by llmscale from the spec; use the matching spec field instead'",
                field_path=".extraArgs",
                message="spec.engine.extraArgs: a flag managed by llmscale is set; use the spec field",
            )
        )
    }

    image: ShortString = Field(
        default=defaults.ENGINE_IMAGE,
        description=(
            "vLLM OpenAI-server container image; pin it by digest (repo:tag@sha256:...) so that a "
            "moved tag cannot change what runs. The default is v0.11.0 by digest."
        ),
        examples=[
            "vllm/vllm-openai:v0.11.0@sha256:014a95f21c9edf6abe0aea6b07353f96baa4ec291c427bb1176dc7c93a85845c"
        ],
    )
    quantization: Quantization | None = Field(
        default=None,
        description="Weight quantisation method (`--quantization`); the checkpoint must be quantised"
        " that way. Unset serves the checkpoint's own format.",
        examples=["awq"],
    )
    dtype: Dtype = Field(
        default=defaults.ENGINE_DTYPE,
        description="Activation and weight dtype (`--dtype`); `auto` follows the checkpoint (float32"
        " checkpoints serve in float16).",
        examples=["bfloat16"],
    )
    max_model_len: int | None = Field(
        default=None,
        ge=16,
        le=10_000_000,
        description="Context length in tokens, prompt plus output (`--max-model-len`). Defaults to the"
        " model's maximum.",
        examples=[8192],
    )
    tensor_parallel_size: int | None = Field(
        default=None,
        ge=1,
        le=8,
        description="GPUs one model copy is split across (`--tensor-parallel-size`); must divide"
        " resources.gpu.count. Unset: the planner picks the smallest size that fits.",
        examples=[2],
    )
    gpu_memory_utilization: float = Field(
        default=defaults.GPU_MEMORY_UTILIZATION,
        gt=0,
        le=1,
        description="Fraction (0-1] of each GPU's memory vLLM may use for weights, activations and KV"
        " cache (`--gpu-memory-utilization`).",
        examples=[0.9],
    )
    extra_args: Annotated[list[Arg], Field(max_length=64)] = Field(
        default_factory=list,
        description="Further `vllm serve` arguments, appended verbatim. Flags llmscale sets from the"
        " spec (--port, --tensor-parallel-size, ...) are rejected.",
        examples=[["--enable-prefix-caching", "--max-num-seqs=128"]],
    )

    @field_validator("extra_args")
    @classmethod
    def _no_managed_flags(cls, value: list[str]) -> list[str]:
        for arg in value:
            if re.match(MANAGED_FLAG_REGEX, arg):
                raise ValueError(
                    f"spec.engine.extraArgs: {arg} is set by llmscale from the spec;"
                    " use the matching spec field instead"
                )
        return value


class GpuSpec(ApiModel):
    count: int | None = Field(
        default=None,
        ge=1,
        le=8,
        description="GPUs per pod (`nvidia.com/gpu` limit), all on one node; a multi-node replica has"
        " this many on each of its nodes. Unset: the tensor parallel size (chosen by the planner"
        " when that is unset too).",
        examples=[2],
    )
    product: GpuProduct = Field(
        description="GPU catalog name; pods are scheduled onto nodes whose `nvidia.com/gpu.product`"
        " label is this GPU's.",
        examples=["H100-80GB"],
    )


class ResourcesSpec(ApiModel):
    gpu: GpuSpec = Field(
        description="GPU type and count per replica.", examples=[{"product": "L4", "count": 1}]
    )
    max_nodes_per_replica: int = Field(
        default=defaults.MAX_NODES_PER_REPLICA,
        ge=1,
        le=16,
        description="Most nodes one replica may span. When the model does not fit one node of the"
        " GPU product, the planner uses vLLM's multi-node layout (tensor parallel within a node,"
        " pipeline parallel across nodes) on the fewest nodes that fit, and the replica becomes a"
        " LeaderWorkerSet group (the LeaderWorkerSet controller must be installed). 1 = single-node"
        " only; a model that needs more nodes than this is refused with the numbers.",
        examples=[4],
    )
    cpu: Quantity | None = Field(
        default=None,
        description="CPU request of the vLLM container (Kubernetes quantity). Unset: no request.",
        examples=["4"],
    )
    memory: Quantity | None = Field(
        default=None,
        description="Memory request and limit of the vLLM container (Kubernetes quantity, bytes)."
        " Unset: none.",
        examples=["32Gi"],
    )


class SloSpec(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel_rule(
                "!has(self.ttftP95) || duration(self.ttftP95) > duration('0s')",
                "'spec.scaling.slo.ttftP95: ' + self.ttftP95 + ' must be greater than 0'",
                field_path=".ttftP95",
                message="spec.scaling.slo.ttftP95 must be greater than 0",
            ),
            cel_rule(
                "!has(self.itlP95) || duration(self.itlP95) > duration('0s')",
                "'spec.scaling.slo.itlP95: ' + self.itlP95 + ' must be greater than 0'",
                field_path=".itlP95",
                message="spec.scaling.slo.itlP95 must be greater than 0",
            ),
        )
    }

    ttft_p95: Duration = Field(
        default=defaults.SLO_TTFT_P95,
        description="Target 95th-percentile time to first token (Go duration: ms, s, m, h).",
        examples=["500ms"],
    )
    itl_p95: Duration = Field(
        default=defaults.SLO_ITL_P95,
        description="Target 95th-percentile inter-token latency (Go duration).",
        examples=["50ms"],
    )
    objective: float = Field(
        default=defaults.SLO_OBJECTIVE,
        gt=0,
        le=1,
        description="Fraction (0-1] of requests that must meet both targets; 1 - objective is the error"
        " budget that decides, among other things, whether cold starts from zero are affordable.",
        examples=[0.99],
    )

    @field_validator("ttft_p95", "itl_p95")
    @classmethod
    def _positive(cls, value: str, info: ValidationInfo) -> str:
        if parse_duration_seconds(value) <= 0:
            field = to_camel(info.field_name or "")
            raise ValueError(f"spec.scaling.slo.{field}: {value} must be greater than 0")
        return value

    @property
    def ttft_p95_seconds(self) -> float:
        return parse_duration_seconds(self.ttft_p95)

    @property
    def itl_p95_seconds(self) -> float:
        return parse_duration_seconds(self.itl_p95)


def _scaling_rules() -> dict[str, Any]:
    return cel_rules(
        cel_rule(
            "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
            cel_text(
                "spec.scaling.minReplicas: ",
                ("self.minReplicas",),
                " must not exceed maxReplicas (",
                ("self.maxReplicas",),
                ")",
            ),
            field_path=".minReplicas",
            message="spec.scaling.minReplicas must not exceed maxReplicas",
        ),
        cel_rule(
            "!has(self.strategy) || self.strategy != 'ScaleToZero' || !has(self.minReplicas)"
            " || self.minReplicas == 0",
            cel_text(
                "spec.scaling.minReplicas: ", ("self.minReplicas",), " must be 0 with strategy ScaleToZero"
            ),
            field_path=".minReplicas",
            message="spec.scaling.minReplicas must be 0 with strategy ScaleToZero",
        ),
        cel_rule(
            "!has(self.strategy) || self.strategy != 'Warm' || !has(self.minReplicas)"
            " || self.minReplicas >= 1",
            cel_text(
                "spec.scaling.minReplicas: ", ("self.minReplicas",), " must be at least 1 with strategy Warm"
            ),
            field_path=".minReplicas",
            message="spec.scaling.minReplicas must be at least 1 with strategy Warm",
        ),
        cel_rule(
            "!has(self.replicas) || !has(self.maxReplicas) || self.replicas <= self.maxReplicas",
            cel_text(
                "spec.scaling.replicas: ",
                ("self.replicas",),
                " must not exceed maxReplicas (",
                ("self.maxReplicas",),
                ")",
            ),
            field_path=".replicas",
            message="spec.scaling.replicas must not exceed maxReplicas",
        ),
        cel_rule(
            "!has(self.replicas) || !has(self.minReplicas) || self.replicas >= self.minReplicas",
            cel_text(
                "spec.scaling.replicas: ",
                ("self.replicas",),
                " must be at least minReplicas (",
                ("self.minReplicas",),
                ")",
            ),
            field_path=".replicas",
            message="spec.scaling.replicas must be at least minReplicas",
        ),
        cel_rule(
            "!has(self.strategy) || self.strategy != 'Warm' || !has(self.replicas) || self.replicas >= 1",
            cel_text("spec.scaling.replicas: ", ("self.replicas",), " must be at least 1 with strategy Warm"),
            field_path=".replicas",
            message="spec.scaling.replicas must be at least 1 with strategy Warm",
        ),
    )


class ScalingSpec(ApiModel):
    model_config = ApiModel.model_config | {"json_schema_extra": _scaling_rules()}

    strategy: Strategy = Field(
        default=defaults.SCALING_STRATEGY,
        description="Warm: fixed always-on replicas. Autoscaled: replicas follow the forecast between"
        " min and max. ScaleToZero: release every GPU when idle, wake on the first request. Auto: the"
        " operator picks one of the three from forecast, cold start, SLO and GPU price.",
        examples=["Auto"],
    )
    min_replicas: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Fewest replicas. Unset: 0 for ScaleToZero and Auto, 1 for Warm and Autoscaled.",
        examples=[1],
    )
    max_replicas: int = Field(
        default=defaults.MAX_REPLICAS,
        ge=1,
        le=1000,
        description="Most replicas (each uses resources.gpu.count GPUs).",
        examples=[4],
    )
    replicas: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Replica count for Warm (the /scale subresource writes it: `kubectl scale"
        " llmdep/NAME --replicas=N`). Unset: minReplicas. Other strategies size themselves.",
        examples=[2],
    )
    mode: ScalingMode = Field(
        default=defaults.SCALING_MODE,
        description="Active applies scaling decisions; DryRun only records them in status and Events.",
        examples=["DryRun"],
    )
    slo: SloSpec = Field(
        default_factory=SloSpec,
        description="Latency objective the scaling aims for.",
        examples=[{"ttftP95": "1s", "itlP95": "50ms", "objective": 0.99}],
    )
    capacity_hint: float | None = Field(
        default=None,
        gt=0,
        description="Requests per second one replica sustains within the SLO, if known from a"
        " benchmark; the autoscaler starts from it instead of the model estimate.",
        examples=[4.5],
    )

    @model_validator(mode="after")
    def _consistent(self) -> ScalingSpec:
        lo, hi = self.min_replicas, self.max_replicas
        if lo is not None and lo > hi:
            raise ValueError(f"spec.scaling.minReplicas: {lo} must not exceed maxReplicas ({hi})")
        if self.strategy == "ScaleToZero" and lo not in (None, 0):
            raise ValueError(f"spec.scaling.minReplicas: {lo} must be 0 with strategy ScaleToZero")
        if self.strategy == "Warm" and lo is not None and lo < 1:
            raise ValueError(f"spec.scaling.minReplicas: {lo} must be at least 1 with strategy Warm")
        if self.replicas is not None:
            if self.replicas > hi:
                raise ValueError(f"spec.scaling.replicas: {self.replicas} must not exceed maxReplicas ({hi})")
            if lo is not None and self.replicas < lo:
                raise ValueError(
                    f"spec.scaling.replicas: {self.replicas} must be at least minReplicas ({lo})"
                )
            if self.strategy == "Warm" and self.replicas < 1:
                raise ValueError(
                    f"spec.scaling.replicas: {self.replicas} must be at least 1 with strategy Warm"
                )
        return self

    @property
    def effective_min_replicas(self) -> int:
        if self.min_replicas is not None:
            return self.min_replicas
        return defaults.min_replicas_for(self.strategy)

    @property
    def loop_owned(self) -> bool:
        """True when the autoscaling loop, not the spec, decides the replica count."""
        return self.strategy in LOOP_OWNED_STRATEGIES

    @property
    def fixed_replicas(self) -> int:
        """Replica count for strategies the spec sizes (Warm): spec.scaling.replicas or minReplicas."""
        if self.replicas is not None:
            return self.replicas
        return max(1, self.effective_min_replicas) if self.strategy == "Warm" else self.effective_min_replicas
