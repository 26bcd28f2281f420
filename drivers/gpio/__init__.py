"""Digital GPIO through gpiozero (see :mod:`lwm2md.drivers.gpio.pins`)."""

from lwm2md.drivers.gpio.pins import (
    PIN_FACTORIES,
    DigitalIn,
    DigitalOut,
    GpioInput,
    GpioOutput,
    GpioUnavailable,
    PinSpec,
    make_pin_factory,
    pin_label,
)

__all__ = [
    "PIN_FACTORIES",
    "DigitalIn",
    "DigitalOut",
    "GpioInput",
    "GpioOutput",
    "GpioUnavailable",
    "PinSpec",
    "make_pin_factory",
    "pin_label",
]
