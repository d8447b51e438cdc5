"""The `LLMDeployment` resource: top-level spec (pod-level settings) and the whole object."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import Field, ValidationError, model_validator

from llmscale.api import defaults
from llmscale.api.base import ApiModel, cel_rule, cel_rules, cel_text
from llmscale.api.spec import (
    MANAGED_POD_LABELS,
    EngineSpec,
    ModelSpec,
    Opaque,
    Quantity,
    ResourcesSpec,
    ScalingSpec,
    ShortString,
    StringMap,
)
from llmscale.api.status import LLMDeploymentStatus
from llmscale.errors import UserInputError

_MANAGED_LABELS_CEL: Final = "[" + ", ".join(f"'{label}'" for label in MANAGED_POD_LABELS) + "]"


class SecretKeyRef(ApiModel):
    name: ShortString = Field(
        description="Secret name in the LLMDeployment's namespace.", examples=["hf-token"]
    )
    key: ShortString = Field(
        default=defaults.HF_TOKEN_SECRET_KEY,
        description="Key in the Secret's data.",
        examples=["HF_TOKEN"],
    )


class PvcCache(ApiModel):
    claim_name: ShortString = Field(
        description="PersistentVolumeClaim holding the Hugging Face cache (shared by replicas when"
        " ReadWriteMany).",
        examples=["model-cache"],
    )
    read_only: bool = Field(
        default=False,
        description="Mount read-only (a pre-populated cache).",
        examples=[True],
    )


class EmptyDirCache(ApiModel):
    size_limit: Quantity | None = Field(
        default=None,
        description="Maximum size of the per-pod cache (Kubernetes quantity, bytes); the pod is evicted"
        " beyond it. Size it above the model's weights.",
        examples=["100Gi"],
    )
    medium: str | None = Field(
        default=None,
        pattern="^(Memory)?$",
        description="`Memory` for a tmpfs (counts against the container's memory); empty for node disk.",
        examples=[""],
    )


class ModelCacheSpec(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel_rule(
                "has(self.persistentVolumeClaim) != has(self.emptyDir)",
                "'spec.modelCache: set exactly one of persistentVolumeClaim and emptyDir'",
                message="spec.modelCache: set exactly one of persistentVolumeClaim and emptyDir",
            )
        )
    }

    persistent_volume_claim: PvcCache | None = Field(
        default=None,
        description="Cache model downloads on a PersistentVolumeClaim (survives pod restarts: faster"
        " cold starts).",
        examples=[{"claimName": "model-cache"}],
    )
    empty_dir: EmptyDirCache | None = Field(
        default=None,
        description="Cache model downloads in a per-pod emptyDir (downloaded again by every new pod).",
        examples=[{"sizeLimit": "100Gi"}],
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelCacheSpec:
        if (self.persistent_volume_claim is None) == (self.empty_dir is None):
            raise ValueError("spec.modelCache: set exactly one of persistentVolumeClaim and emptyDir")
        return self


class LocalObjectReference(ApiModel):
    name: ShortString = Field(
        description="Object name in the same namespace.", examples=["registry-credentials"]
    )


class LLMDeploymentSpec(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel_rule(
                "!has(self.engine) || !has(self.engine.tensorParallelSize) || !has(self.resources.gpu.count)"
                " || self.resources.gpu.count % self.engine.tensorParallelSize == 0",
                cel_text(
                    "spec.engine.tensorParallelSize: ",
                    ("self.engine.tensorParallelSize",),
                    " must divide spec.resources.gpu.count (",
                    ("self.resources.gpu.count",),
                    ")",
                ),
                field_path=".engine.tensorParallelSize",
                message="spec.engine.tensorParallelSize must divide spec.resources.gpu.count",
            ),
            cel_rule(
                f"!has(self.podLabels) || !self.podLabels.exists(k, k in {_MANAGED_LABELS_CEL})",
                f"'spec.podLabels: ' + self.podLabels.filter(k, k in {_MANAGED_LABELS_CEL})[0]"
                " + ' is set by llmscale and cannot be overridden'",
                field_path=".podLabels",
                message="spec.podLabels: a label managed by llmscale cannot be overridden",
            ),
        )
    }

    model: ModelSpec = Field(
        description="What to serve.", examples=[{"name": "meta-llama/Llama-3.1-8B-Instruct"}]
    )
    engine: EngineSpec = Field(
        default_factory=EngineSpec,
        description="vLLM engine settings.",
        examples=[{"maxModelLen": 8192, "quantization": "awq"}],
    )
    resources: ResourcesSpec = Field(
        description="Compute per replica.", examples=[{"gpu": {"product": "H100-80GB", "count": 1}}]
    )
    scaling: ScalingSpec = Field(
        default_factory=ScalingSpec,
        description="How many replicas run and when.",
        examples=[{"strategy": "Auto", "maxReplicas": 4, "slo": {"ttftP95": "1s"}}],
    )
    hf_token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding a Hugging Face token (gated models), mounted read-only as a file"
        " that vLLM's downloader reads through HF_TOKEN_PATH (never an environment variable).",
        examples=[{"name": "hf-token", "key": "HF_TOKEN"}],
    )
    model_cache: ModelCacheSpec | None = Field(
        default=None,
        description="Where downloaded weights are cached (mounted at HF_HOME). Unset: an emptyDir.",
        examples=[{"persistentVolumeClaim": {"claimName": "model-cache"}}],
    )
    node_selector: StringMap | None = Field(
        default=None,
        description="Extra node labels the pods require, on top of the GPU product affinity.",
        examples=[{"topology.kubernetes.io/zone": "eu-west-1a"}],
    )
    tolerations: Annotated[list[Opaque], Field(max_length=32)] | None = Field(
        default=None,
        description="Extra pod tolerations (Kubernetes Toleration objects); the nvidia.com/gpu taint is"
        " always tolerated.",
        examples=[[{"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}]],
    )
    affinity: Opaque | None = Field(
        default=None,
        description="Extra pod affinity (Kubernetes Affinity object), merged with the GPU product node"
        " affinity (its node terms are ANDed with the product requirement).",
        examples=[{"podAntiAffinity": {}}],
    )
    env: Annotated[list[Opaque], Field(max_length=64)] | None = Field(
        default=None,
        description="Extra environment of the vLLM container (Kubernetes EnvVar objects).",
        examples=[[{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}]],
    )
    pod_labels: StringMap | None = Field(
        default=None,
        description="Labels merged into the pod template (llmscale's own labels cannot be overridden).",
        examples=[{"team": "search"}],
    )
    pod_annotations: StringMap | None = Field(
        default=None,
        description="Annotations merged into the pod template.",
        examples=[{"llmscale.dev/startup-delay": "20s"}],
    )
    gpu_price_per_hour: float | None = Field(
        default=None,
        ge=0,
        description="Price of one GPU in USD per hour, for cost status and strategy choice. Unset: the"
        " GPU catalog price.",
        examples=[2.49],
    )
    termination_grace_period_seconds: int | None = Field(
        default=None,
        ge=0,
        le=86400,
        description="Seconds a terminating pod gets to drain (preStop wait + in-flight requests)."
        " Unset: sized from maxModelLen x the ITL SLO (the longest request that meets the SLO).",
        examples=[300],
    )
    service_account_name: ShortString | None = Field(
        default=None,
        description="ServiceAccount of the pods. Unset: the namespace default.",
        examples=["vllm"],
    )
    image_pull_secrets: Annotated[list[LocalObjectReference], Field(max_length=16)] | None = Field(
        default=None,
        description="Secrets for pulling the engine image.",
        examples=[[{"name": "registry-credentials"}]],
    )
    priority_class_name: ShortString | None = Field(
        default=None,
        description="PriorityClass of the pods.",
        examples=["llm-serving"],
    )
    runtime_class_name: ShortString | None = Field(
        default=None,
        description="RuntimeClass of the pods (e.g. the NVIDIA container runtime's). Unset: the node's"
        " default runtime.",
        examples=["nvidia"],
    )
    topology_spread_constraints: Annotated[list[Opaque], Field(max_length=16)] | None = Field(
        default=None,
        description="Pod topology spread constraints (Kubernetes TopologySpreadConstraint objects),"
        " e.g. to spread replicas over zones. Their labelSelector should use llmscale.dev/deployment.",
        examples=[
            [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"llmscale.dev/deployment": "llama-8b"}},
                }
            ]
        ],
    )
    automount_service_account_token: bool = Field(
        default=False,
        description="Mount a ServiceAccount token into the pods. vLLM never calls the Kubernetes API,"
        " so the default is false (a stolen token is a foothold in the cluster).",
        examples=[False],
    )
    pod_security_context: Opaque | None = Field(
        default=None,
        description="Pod securityContext (Kubernetes PodSecurityContext) merged key by key over"
        " llmscale's restricted-Pod-Security-Standard default (runAsNonRoot, runAsUser/runAsGroup/"
        f"fsGroup {defaults.RUN_AS_USER}, seccompProfile RuntimeDefault); keys set here win.",
        examples=[{"runAsUser": 2000, "runAsGroup": 2000, "fsGroup": 2000}],
    )
    security_context: Opaque | None = Field(
        default=None,
        description="securityContext of the vLLM container (Kubernetes SecurityContext) merged key by"
        " key over llmscale's restricted default (allowPrivilegeEscalation false, capabilities drop"
        " ALL, readOnlyRootFilesystem, runAsNonRoot, seccompProfile RuntimeDefault); keys set here win.",
        examples=[{"readOnlyRootFilesystem": False}],
    )

    @model_validator(mode="after")
    def _cross_field(self) -> LLMDeploymentSpec:
        tp, count = self.engine.tensor_parallel_size, self.resources.gpu.count
        if tp is not None and count is not None and count % tp != 0:
            raise ValueError(
                f"spec.engine.tensorParallelSize: {tp} must divide spec.resources.gpu.count ({count})"
            )
        for label in MANAGED_POD_LABELS:
            if self.pod_labels and label in self.pod_labels:
                raise ValueError(f"spec.podLabels: {label} is set by llmscale and cannot be overridden")
        return self


class ObjectMeta(ApiModel):
    """The part of metadata the operator reads (the rest is ignored, not rejected)."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    name: str
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class LLMDeployment(ApiModel):
    model_config = ApiModel.model_config | {"extra": "ignore"}

    api_version: str = f"{defaults.API_GROUP}/{defaults.API_VERSION}"
    kind: str = defaults.KIND
    metadata: ObjectMeta
    spec: LLMDeploymentSpec
    status: LLMDeploymentStatus | None = None

    @classmethod
    def from_body(cls, body: Any) -> LLMDeployment:
        """Parse a resource body as the API server returns it (a dict or kopf's Body)."""
        return cls.model_validate(dict(body))

    @classmethod
    def parse(cls, body: Any, where: str) -> LLMDeployment:
        """`from_body`, but a bad body raises UserInputError with ONE line: `where`, the field
        path and the offending value (the first pydantic error)."""
        if not isinstance(body, Mapping):
            raise UserInputError(f"{where}: value {type(body).__name__} is not an LLMDeployment object")
        try:
            return cls.from_body(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(part) for part in first["loc"]) or "(top level)"
            value = first.get("input")
            shown = "missing" if first.get("type") == "missing" else f"value {value!r}"
            raise UserInputError(f"{where}: {path}: {shown}: {first['msg']}") from None
