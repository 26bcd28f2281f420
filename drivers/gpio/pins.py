"""Digital GPIO pins through gpiozero, free of LwM2M concepts.

:class:`GpioInput` and :class:`GpioOutput` wrap gpiozero's
``DigitalInputDevice`` and ``DigitalOutputDevice``; :func:`make_pin_factory`
turns a configured backend name into a gpiozero pin factory.

Values are *logical*: an input's ``value`` is True while the pin is at its
active level, an output's ``set(True)`` drives it to its active level.

Threading: gpiozero reports edges on a thread of its own (lgpio, RPi.GPIO
and pigpio each run a callback thread; the mock factory calls back on
whichever thread drove the mock pin). :meth:`GpioInput.on_change` callbacks
therefore run on that thread. Code living on an asyncio loop must hop over
with ``loop.call_soon_threadsafe`` and must not touch loop state from the
callback itself.

gpiozero is imported lazily, so importing this module never requires it.
"""

from __future__ import annotations

import importlib
import logging
import threading
import warnings
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from lwm2md.drivers.base import DriverError

LOG = logging.getLogger(__name__)

PinSpec = int | str
"""A BCM GPIO number or a gpiozero pin name (``"GPIO17"``, ``"BOARD11"``)."""

PIN_FACTORIES: dict[str, tuple[str, str, str]] = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory", "the Python package 'lgpio'"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory", "the Python package 'RPi.GPIO'"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory", "the Python package 'pigpio' and a running pigpiod"),
    "native": ("gpiozero.pins.native", "NativeFactory", "gpiozero only"),
    "mock": ("gpiozero.pins.mock", "MockFactory", "gpiozero only"),
}
"""Backend name -> (module, class, what it needs), for :func:`make_pin_factory`."""


class GpioUnavailable(DriverError):
    """A pin (or a whole pin factory) cannot be used: no gpiochip, no permission, busy, not a Pi, ...

    ``pin`` names the pin concerned; None when the pin factory itself failed.
    """

    def __init__(self, message: str, *, pin: PinSpec | None = None) -> None:
        super().__init__(message)
        self.pin = pin


def pin_label(pin: PinSpec) -> str:
    """How messages name a pin: ``GPIO17`` for a number, the name itself otherwise."""
    return f"GPIO{pin}" if isinstance(pin, int) else pin


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@runtime_checkable
class DigitalIn(Protocol):
    """A digital input: its logical level and change callbacks."""

    name: str

    @property
    def value(self) -> bool:
        """True while the input is active; raises DriverError when the pin cannot be read."""
        ...

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(new_value)`` on every change, possibly on another thread."""
        ...

    def close(self) -> None:
        """Release the pin; idempotent."""
        ...


@runtime_checkable
class DigitalOut(Protocol):
    """A digital output."""

    name: str

    @property
    def value(self) -> bool:
        """The logical level last driven."""
        ...

    def set(self, value: bool) -> None:
        """Drive the output active (True) or inactive; raises DriverError on failure."""
        ...

    def close(self) -> None:
        """Release the pin; idempotent."""
        ...


def make_pin_factory(name: str | None) -> Any:
    """A new gpiozero pin factory for backend ``name``.

    None returns None, which makes gpiozero pick its default (the
    ``GPIOZERO_PIN_FACTORY`` environment variable, else lgpio, rpigpio,
    pigpio, native in that order) when the first pin opens. Share one
    factory between all pins of a process. Raises ValueError for a name
    not in :data:`PIN_FACTORIES` and :class:`GpioUnavailable` when the
    backend is not installed or cannot open the hardware.
    """
    if name is None:
        return None
    try:
        module_name, class_name, needs = PIN_FACTORIES[name]
    except KeyError:
        known = ", ".join(sorted(PIN_FACTORIES))
        raise ValueError(f"unknown GPIO pin factory {name!r}; expected one of {known}") from None
    try:
        factory_class = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        raise GpioUnavailable(f"pin factory {name}: not installed (needs {needs}): {_reason(exc)}") from exc
    try:
        return factory_class()
    except Exception as exc:  # backends raise OSError, RuntimeError, lgpio.error, gpiozero errors...
        raise GpioUnavailable(f"pin factory {name}: cannot start: {_reason(exc)}") from exc


def _open(pin: PinSpec, build: Callable[[], Any]) -> Any:
    """Run ``build()`` (a gpiozero device constructor); any failure becomes GpioUnavailable.

    gpiozero's warnings (e.g. why each default factory was skipped) are folded
    into the message on failure, since they carry the real reason, and
    logged on success.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            device = build()
        except Exception as exc:  # the hardware path: every backend has its own error types
            detail = _reason(exc)
            notes = _gpiozero_warnings(caught)
            if notes:
                detail += " (" + "; ".join(notes) + ")"
            raise GpioUnavailable(f"{pin_label(pin)}: cannot open: {detail}", pin=pin) from exc
    for note in _gpiozero_warnings(caught):
        LOG.warning("%s: %s", pin_label(pin), note)
    return device


def _gpiozero_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if w.category.__module__.startswith("gpiozero")]


class GpioInput:
    """A gpiozero ``DigitalInputDevice`` as a :class:`DigitalIn`.

    ``pull_up``: True pulls up (the pin is then active when low), False pulls
    down (active when high), None leaves it floating, which requires
    ``active_state`` (True: active when high). Giving both a pull and an
    ``active_state`` is a ValueError (gpiozero derives the active level from
    the pull). ``bounce_time`` (seconds) is passed to gpiozero; not every
    factory honours it. Raises :class:`GpioUnavailable` when the pin cannot
    be opened.
    """

    def __init__(
        self,
        pin: PinSpec,
        *,
        pull_up: bool | None = None,
        active_state: bool | None = None,
        bounce_time: float | None = None,
        pin_factory: Any = None,
    ) -> None:
        if pull_up is None and active_state is None:
            raise ValueError(f"{pin_label(pin)}: a floating input (pull_up None) needs active_state")
        if pull_up is not None and active_state is not None:
            raise ValueError(f"{pin_label(pin)}: active_state must be None when pull_up is set")
        self.pin = pin
        self.name = pin_label(pin)
        self._callbacks: list[Callable[[bool], None]] = []
        self._lock = threading.Lock()

        def build() -> Any:
            from gpiozero import DigitalInputDevice

            return DigitalInputDevice(
                pin, pull_up=pull_up, active_state=active_state, bounce_time=bounce_time,
                pin_factory=pin_factory,
            )  # fmt: skip

        self._device: Any = _open(pin, build)
        self._device.when_activated = self._activated
        self._device.when_deactivated = self._deactivated

    @property
    def device(self) -> Any:
        """The underlying gpiozero device (tests reach the mock pin through ``device.pin``)."""
        return self._device

    @property
    def value(self) -> bool:
        """True while the pin is at its active level."""
        try:
            return bool(self._device.value)
        except Exception as exc:
            raise GpioUnavailable(f"{self.name}: cannot read: {_reason(exc)}", pin=self.pin) from exc

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """Add ``callback(new_value)``; it runs on gpiozero's thread, once per change."""
        with self._lock:
            self._callbacks.append(callback)

    def _activated(self) -> None:
        self._fire(True)

    def _deactivated(self) -> None:
        self._fire(False)

    def _fire(self, value: bool) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(value)
            except Exception:  # never let a listener kill gpiozero's callback thread
                LOG.exception("%s: change callback failed", self.name)

    def close(self) -> None:
        """Release the pin; gpiozero stops reporting its changes."""
        try:
            self._device.close()
        except Exception as exc:
            LOG.warning("%s: close failed: %s", self.name, exc)


class GpioOutput:
    """A gpiozero ``DigitalOutputDevice`` as a :class:`DigitalOut`.

    ``active_high`` False makes the active level low; ``initial`` is the
    logical level driven when the pin opens. Raises :class:`GpioUnavailable`
    when the pin cannot be opened.
    """

    def __init__(
        self,
        pin: PinSpec,
        *,
        active_high: bool = True,
        initial: bool = False,
        pin_factory: Any = None,
    ) -> None:
        self.pin = pin
        self.name = pin_label(pin)

        def build() -> Any:
            from gpiozero import DigitalOutputDevice

            return DigitalOutputDevice(
                pin, active_high=active_high, initial_value=bool(initial), pin_factory=pin_factory
            )

        self._device: Any = _open(pin, build)

    @property
    def device(self) -> Any:
        """The underlying gpiozero device."""
        return self._device

    @property
    def value(self) -> bool:
        """The logical level last driven."""
        try:
            return bool(self._device.value)
        except Exception as exc:
            raise GpioUnavailable(f"{self.name}: cannot read: {_reason(exc)}", pin=self.pin) from exc

    def set(self, value: bool) -> None:
        """Drive the pin to its active (True) or inactive level."""
        try:
            self._device.value = bool(value)
        except Exception as exc:
            raise GpioUnavailable(f"{self.name}: cannot drive: {_reason(exc)}", pin=self.pin) from exc

    def close(self) -> None:
        """Release the pin (gpiozero leaves it an input)."""
        try:
            self._device.close()
        except Exception as exc:
            LOG.warning("%s: close failed: %s", self.name, exc)
