"""Time for chip models and drivers that passes only when the driver sleeps.

A driver takes ``sleep=`` (conversion waits) and a chip model takes
``clock=`` (when a conversion completes); giving both the same
:class:`VirtualTime` makes conversion timing exact and instant in tests.
"""

from __future__ import annotations


class VirtualTime:
    """A clock advanced only by :meth:`sleep`; ``sleeps`` records every wait."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
