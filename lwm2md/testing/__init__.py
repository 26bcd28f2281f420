"""An in-repo LwM2M server for tests and demos (``python -m lwm2md.testing``).

See :class:`lwm2md.testing.server.TestServer`.
"""

from lwm2md.testing.server import (
    Event,
    EventKind,
    Observation,
    Registration,
    Response,
    TestServer,
    UnknownEndpoint,
)

__all__ = [
    "Event",
    "EventKind",
    "Observation",
    "Registration",
    "Response",
    "TestServer",
    "UnknownEndpoint",
]
