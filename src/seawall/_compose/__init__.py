"""Composition: resilience policies as LLM middleware, and pipelines for plain functions."""

from __future__ import annotations

from ._middleware import with_bulkhead as with_bulkhead
from ._middleware import with_circuit_breaker as with_circuit_breaker
from ._middleware import with_fallback as with_fallback
from ._middleware import with_hedge as with_hedge
from ._middleware import with_rate_limit as with_rate_limit
from ._middleware import with_retry as with_retry
from ._middleware import with_timeout as with_timeout
from ._model import Model as Model
from ._model import apply_middleware as apply_middleware
from ._model import as_llm_middleware as as_llm_middleware
from ._pipeline import Pipeline as Pipeline
from ._telemetry import with_telemetry as with_telemetry
