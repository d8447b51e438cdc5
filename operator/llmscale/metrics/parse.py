"""Turning Prometheus vectors into per-deployment numbers, with every odd case decided explicitly.

The choices (documented in docs/metrics.md):

- **Empty vector** for a signal: nothing to report; every deployment gets the signal in its
  `missing` set ("no data"). At zero replicas the engine series disappear, which is exactly why
  the gateway's series exist.
- **Series without a `namespace` or `llmdeployment` label**: not one of ours (a pod without the
  `llmscale.dev/deployment` label); ignored.
- **Several series for one deployment** (cannot happen with our `by (namespace, llmdeployment)`
  aggregation unless a recording rule or a second scrape job adds a label): the largest value is
  kept, because over-estimating load costs GPU-minutes while under-estimating misses the SLO.
- **NaN latency quantile**: the histogram exists but had no observation in the window, so this
  is "no traffic": value `None`, *not* missing.
- **NaN in a rate or gauge**, or any **-Inf** or negative value: unusable, so `None` and missing.
- **+Inf latency quantile**: the quantile is beyond the largest finite bucket; we report that
  bucket bound (a lower bound, finite so that status JSON and arithmetic survive).
- **+Inf rate or gauge**: unusable, `None` and missing.
- **KV-cache usage** outside 0..1 is clamped to 0..1 (the gauge is a fraction; rounding and
  the legacy gauge have been seen slightly above 1).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from llmscale.errors import MetricsUnavailableError
from llmscale.metrics.promql import LARGEST_FINITE_BUCKET_SECONDS
from llmscale.metrics.types import QUANTILE_SIGNALS, DeploymentKey

log = logging.getLogger(__name__)

NO_TRAFFIC = object()
"""Marker for a NaN quantile over a present histogram: no observation in the window."""


def _key_of(labels: Mapping[str, Any]) -> DeploymentKey | None:
    namespace = labels.get("namespace")
    name = labels.get("llmdeployment")
    if not isinstance(namespace, str) or not isinstance(name, str) or not namespace or not name:
        return None
    return (namespace, name)


def _float_of(signal: str, raw: object) -> float:
    try:
        return float(raw)  # type: ignore[arg-type]  # Prometheus sends values as strings
    except (TypeError, ValueError) as exc:
        raise MetricsUnavailableError(f"{signal}: sample value {raw!r} is not a number") from exc


def clean_value(signal: str, value: float) -> float | object | None:
    """Apply the NaN/Inf/range rules to one value: a float, NO_TRAFFIC, or None (unusable)."""
    if signal in QUANTILE_SIGNALS:
        if math.isnan(value):
            return NO_TRAFFIC
        if value == math.inf:
            return LARGEST_FINITE_BUCKET_SECONDS[signal]
    if math.isnan(value) or math.isinf(value) or value < 0.0:
        return None
    if signal == "kv_cache_usage":
        return min(value, 1.0)
    return value


def parse_instant_vector(signal: str, result: object) -> dict[DeploymentKey, float | object | None]:
    """One signal's `/api/v1/query` result -> key -> float | NO_TRAFFIC | None."""
    if not isinstance(result, list):
        raise MetricsUnavailableError(
            f"{signal}: expected an instant vector (list), got {type(result).__name__}"
        )
    values: dict[DeploymentKey, float | object | None] = {}
    for series in result:
        if not isinstance(series, dict):
            raise MetricsUnavailableError(f"{signal}: series {series!r} is not an object")
        labels = series.get("metric", {})
        sample = series.get("value")
        if not isinstance(labels, dict) or not isinstance(sample, Sequence) or len(sample) != 2:
            raise MetricsUnavailableError(f"{signal}: malformed series {series!r}")
        key = _key_of(labels)
        if key is None:
            continue
        value = clean_value(signal, _float_of(signal, sample[1]))
        if key in values:
            values[key] = _larger(values[key], value)
            log.warning("%s: several series for %s/%s; keeping the largest value", signal, *key)
        else:
            values[key] = value
    return values


def _larger(a: float | object | None, b: float | object | None) -> float | object | None:
    if isinstance(a, float) and isinstance(b, float):
        return max(a, b)
    for value in (a, b):
        if isinstance(value, float):
            return value
    return NO_TRAFFIC if NO_TRAFFIC in (a, b) else None


def parse_range_matrix(signal: str, result: object) -> dict[DeploymentKey, dict[float, float]]:
    """One signal's `/api/v1/query_range` result -> key -> {timestamp: value}; unusable points dropped."""
    if not isinstance(result, list):
        raise MetricsUnavailableError(
            f"{signal}: expected a range matrix (list), got {type(result).__name__}"
        )
    points: dict[DeploymentKey, dict[float, float]] = {}
    for series in result:
        if not isinstance(series, dict):
            raise MetricsUnavailableError(f"{signal}: series {series!r} is not an object")
        labels = series.get("metric", {})
        samples = series.get("values")
        if not isinstance(labels, dict) or not isinstance(samples, list):
            raise MetricsUnavailableError(f"{signal}: malformed series {series!r}")
        key = _key_of(labels)
        if key is None:
            continue
        target = points.setdefault(key, {})
        for sample in _pairs(signal, samples):
            timestamp, value = sample
            cleaned = clean_value(signal, value)
            if isinstance(cleaned, float):
                # several series for one deployment: keep the largest, as for instant vectors
                target[timestamp] = max(cleaned, target.get(timestamp, cleaned))
    return points


def _pairs(signal: str, samples: Iterable[object]) -> Iterable[tuple[float, float]]:
    for sample in samples:
        if not isinstance(sample, Sequence) or len(sample) != 2:
            raise MetricsUnavailableError(f"{signal}: malformed sample {sample!r}")
        yield _float_of(signal, sample[0]), _float_of(signal, sample[1])
