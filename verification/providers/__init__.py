"""Metric providers: one module each, registered by the name of the field that selects it in a
metric's `provider` (`web`, `prometheus`, `job`). Adding one is copying one.

A provider is a function `measure(config: dict, timeout: float) -> Measured`: `config` is the
provider's block of the metric with the run's args already substituted. It returns the measured
value (the conditions see it as `result`) or raises MeasurementError, which makes the measurement
Error with that message (counted against consecutiveErrorLimit). A provider that decides the
phase itself (a Job: Complete or Failed) sets `Measured.phase`; the conditions are then not used.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class MeasurementError(Exception):
    pass


@dataclass
class Measured:
    value: Any
    phase: str = ""  # "" : evaluate the metric's conditions over `value`
    message: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


Provider = Callable[[dict, float], Measured]
PROVIDERS: dict[str, Provider] = {}
# Providers Argo knows that this server cannot run yet, with the reason a run says.
UNAVAILABLE: dict[str, str] = {}


def provider(name: str) -> Callable[[Provider], Provider]:
    def register(fn: Provider) -> Provider:
        PROVIDERS[name] = fn
        return fn

    return register


def provider_of(metric_provider: dict) -> tuple[str, dict]:
    """(name, config) of the one provider a metric names."""
    names = [name for name, config in metric_provider.items() if config is not None]
    if not names:
        raise MeasurementError("no provider specified")
    if len(names) > 1:
        raise MeasurementError(f"multiple providers specified: {', '.join(sorted(names))}")
    return names[0], metric_provider[names[0]]


def unavailable(metric_provider: dict) -> str:
    """Why a metric's provider cannot run here ("" when it can): checked before a run starts,
    so such a run ends Error at once with the reason instead of after its error limit."""
    try:
        name, _ = provider_of(metric_provider)
    except MeasurementError as exc:
        return str(exc)
    if name in UNAVAILABLE:
        return UNAVAILABLE[name]
    if name not in PROVIDERS:
        return (
            f"metric provider {name!r} is not supported by this server "
            f"(supported: {', '.join(sorted(PROVIDERS))})"
        )
    return ""


def measure(metric_provider: dict, timeout: float) -> Measured:
    name, config = provider_of(metric_provider)
    fn = PROVIDERS.get(name)
    if fn is None:
        raise MeasurementError(
            f"metric provider {name!r} is not supported by this server "
            f"(supported: {', '.join(sorted(PROVIDERS))})"
        )
    return fn(config, timeout)
