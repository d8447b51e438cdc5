"""The GPU catalog: memory, HBM bandwidth, default price and the GFD product label.

`memory_bytes` is the total that CUDA reports (`torch.cuda.mem_get_info()[1]`), which is
what vLLM multiplies by `gpu_memory_utilization`; it is a little below the marketing size
and below `nvidia-smi`'s figure. Where a vLLM startup log printed `total_gpu_memory` we
use that figure (sources in docs/planner.md); otherwise nvidia-smi's MiB minus the usual
~0.45 GiB the driver keeps.

Prices are illustrative on-demand cloud list prices in USD per GPU-hour (2025); every
caller can override them (`plan(..., gpu_price_per_hour_usd=...)`, the CLI's
`--price-per-hour`, the chart values), because real prices depend on the provider,
region and commitment.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmscale.errors import UserInputError

GIB = 1024**3
TB_PER_SECOND = 10**12


@dataclass(frozen=True)
class GPUSpec:
    """One GPU model as the planner sees it."""

    name: str  # catalog name used in specs and on the CLI, e.g. "H100-80GB"
    memory_bytes: int  # total device memory as CUDA reports it
    hbm_bandwidth_bytes_per_second: float
    price_per_hour_usd: float  # default on-demand price of ONE GPU (configurable)
    gfd_product: str  # value of the node label nvidia.com/gpu.product
    compute_capability: tuple[int, int]  # decides which dtypes/quantisations vLLM can run

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GIB

    @property
    def supports_bfloat16(self) -> bool:
        return self.compute_capability >= (8, 0)

    def with_price(self, price_per_hour_usd: float) -> GPUSpec:
        if not price_per_hour_usd >= 0:
            raise UserInputError(
                f"price per hour: value {price_per_hour_usd!r} is invalid; expected a number >= 0 (USD)"
            )
        return replace(self, price_per_hour_usd=price_per_hour_usd)


def _gib(value: float) -> int:
    return int(value * GIB)


GPU_CATALOG: dict[str, GPUSpec] = {
    spec.name: spec
    for spec in (
        GPUSpec("H200", _gib(139.81), 4.8 * TB_PER_SECOND, 5.00, "NVIDIA-H200", (9, 0)),
        GPUSpec("H100-80GB", _gib(79.22), 3.35 * TB_PER_SECOND, 4.00, "NVIDIA-H100-80GB-HBM3", (9, 0)),
        GPUSpec("A100-80GB", _gib(79.15), 2.0 * TB_PER_SECOND, 2.50, "NVIDIA-A100-SXM4-80GB", (8, 0)),
        GPUSpec("A100-40GB", _gib(39.39), 1.56 * TB_PER_SECOND, 1.80, "NVIDIA-A100-SXM4-40GB", (8, 0)),
        GPUSpec("L40S", _gib(44.39), 0.864 * TB_PER_SECOND, 1.50, "NVIDIA-L40S", (8, 9)),
        GPUSpec("L4", _gib(22.03), 0.3 * TB_PER_SECOND, 0.80, "NVIDIA-L4", (8, 9)),
        GPUSpec("A10G", _gib(22.03), 0.6 * TB_PER_SECOND, 1.01, "NVIDIA-A10G", (8, 6)),
        GPUSpec("T4", _gib(14.75), 0.32 * TB_PER_SECOND, 0.53, "Tesla-T4", (7, 5)),
        GPUSpec("RTX-4090", _gib(23.55), 1.0 * TB_PER_SECOND, 0.70, "NVIDIA-GeForce-RTX-4090", (8, 9)),
    )
}

# Spellings people type: "h100", "H100 80GB", "a100_80gb", "rtx4090", "NVIDIA-L4" (the GFD label).
_ALIASES: dict[str, str] = {"h100": "H100-80GB", "a100": "A100-80GB", "4090": "RTX-4090"}


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _lookup_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for spec in GPU_CATALOG.values():
        table[_key(spec.name)] = spec.name
        table[_key(spec.gfd_product)] = spec.name
        table[_key(spec.gfd_product.removeprefix("NVIDIA-"))] = spec.name
    for alias, name in _ALIASES.items():
        table[_key(alias)] = name
    return table


def get_gpu(name: str) -> GPUSpec:
    """The catalog entry for `name` (case, spaces, dashes and underscores do not matter).

    Accepts the catalog name ("H100-80GB") or the GFD product label ("NVIDIA-H100-80GB-HBM3").
    Raises UserInputError naming the value and the known names.
    """
    canonical = _lookup_table().get(_key(name)) if isinstance(name, str) else None
    if canonical is None:
        raise UserInputError(
            f"--gpu: value {name!r} is not a known GPU; expected one of {', '.join(GPU_CATALOG)}"
        )
    return GPU_CATALOG[canonical]


def gpu_for_gfd_product(gfd_product: str) -> GPUSpec | None:
    """The catalog entry whose `nvidia.com/gpu.product` label is `gfd_product`, if any."""
    for spec in GPU_CATALOG.values():
        if spec.gfd_product == gfd_product:
            return spec
    return None
