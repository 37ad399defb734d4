"""The circuit breaker: a private subpackage; its public names are re-exported by `seawall`.

``_options`` (window kinds, validation), ``_window`` (sliding windows), ``_core`` (trip
policy and state machine, pure), ``_events`` (states, events, statistics) and ``_shell``
(the `CircuitBreaker` shared by threads and tasks).
"""

from __future__ import annotations

from ._events import CallRejected as CallRejected
from ._events import CircuitBreakerStatistics as CircuitBreakerStatistics
from ._events import CircuitState as CircuitState
from ._events import CircuitStateChanged as CircuitStateChanged
from ._options import CountWindow as CountWindow
from ._options import TimeWindow as TimeWindow
from ._shell import CallGuard as CallGuard
from ._shell import CircuitBreaker as CircuitBreaker


__all__ = (
    "CallGuard",
    "CallRejected",
    "CircuitBreaker",
    "CircuitBreakerStatistics",
    "CircuitState",
    "CircuitStateChanged",
    "CountWindow",
    "TimeWindow",
)
