"""Tests for the gpiozero-backed GPIO driver layer, on gpiozero's MockFactory."""

from __future__ import annotations

import sys
import threading
import types
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from lwm2md.drivers.base import DriverError
from lwm2md.drivers.gpio import (
    PIN_FACTORIES,
    DigitalIn,
    DigitalOut,
    GpioInput,
    GpioOutput,
    GpioUnavailable,
    make_pin_factory,
    pin_label,
)


class DenyingFactory(MockFactory):  # type: ignore[misc]
    """A mock factory whose listed pins fail as a gpiochip without permission does."""

    def __init__(self, denied: set[int]) -> None:
        super().__init__()
        self.denied = denied

    def pin(self, name: Any, pin_class: Any = None, **kwargs: Any) -> Any:
        if name in self.denied:
            raise PermissionError(13, "Permission denied", "/dev/gpiochip0")
        return super().pin(name, pin_class, **kwargs)


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


# -- inputs --------------------------------------------------------------------


def test_floating_input_follows_the_pin_with_its_active_state(factory: MockFactory) -> None:
    high = GpioInput(17, pull_up=None, active_state=True, pin_factory=factory)
    low = GpioInput(27, pull_up=None, active_state=False, pin_factory=factory)
    assert isinstance(high, DigitalIn)
    factory.pin(17).drive_high()
    factory.pin(27).drive_high()
    assert high.value is True
    assert low.value is False
    factory.pin(17).drive_low()
    factory.pin(27).drive_low()
    assert high.value is False
    assert low.value is True


def test_pull_up_makes_the_input_active_low(factory: MockFactory) -> None:
    button = GpioInput(17, pull_up=True, pin_factory=factory)
    assert factory.pin(17).pull == "up"
    assert button.value is False, "released: pulled high = inactive"
    factory.pin(17).drive_low()
    assert button.value is True


def test_on_change_reports_each_change_once_in_order(factory: MockFactory) -> None:
    inp = GpioInput(17, pull_up=False, pin_factory=factory)
    seen: list[bool] = []
    inp.on_change(seen.append)
    pin = factory.pin(17)
    pin.drive_high()
    pin.drive_high()  # no change: no callback
    pin.drive_low()
    pin.drive_high()
    assert seen == [True, False, True]


def test_on_change_runs_on_the_thread_that_reports_the_edge(factory: MockFactory) -> None:
    inp = GpioInput(17, pull_up=False, pin_factory=factory)
    threads: list[int] = []
    inp.on_change(lambda value: threads.append(threading.get_ident()))
    worker = threading.Thread(target=factory.pin(17).drive_high)
    worker.start()
    worker.join()
    assert threads == [worker.ident]


def test_a_failing_callback_does_not_stop_the_others(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    inp = GpioInput(17, pull_up=False, pin_factory=factory)
    seen: list[bool] = []

    def broken(value: bool) -> None:
        raise RuntimeError("listener bug")

    inp.on_change(broken)
    inp.on_change(seen.append)
    factory.pin(17).drive_high()
    assert seen == [True]
    assert "GPIO17: change callback failed" in caplog.text


def test_close_stops_callbacks_and_frees_the_pin(factory: MockFactory) -> None:
    inp = GpioInput(17, pull_up=False, pin_factory=factory)
    seen: list[bool] = []
    inp.on_change(seen.append)
    inp.close()
    inp.close()  # idempotent
    again = GpioInput(17, pull_up=False, pin_factory=factory)
    factory.pin(17).drive_high()
    assert seen == []
    assert again.value is True


def test_reading_a_closed_input_is_a_driver_error(factory: MockFactory) -> None:
    inp = GpioInput(17, pull_up=False, pin_factory=factory)
    inp.close()
    with pytest.raises(GpioUnavailable, match="GPIO17: cannot read"):
        _ = inp.value


@pytest.mark.parametrize(
    ("pull_up", "active_state"), [(None, None), (True, True), (False, False)], ids=["floating", "up", "down"]
)
def test_pull_and_active_state_must_not_conflict(
    factory: MockFactory, pull_up: bool | None, active_state: bool | None
) -> None:
    with pytest.raises(ValueError, match="GPIO17"):
        GpioInput(17, pull_up=pull_up, active_state=active_state, pin_factory=factory)
    GpioInput(17, pull_up=False, pin_factory=factory)  # the rejected call did not claim the pin


# -- outputs ------------------------------------------------------------------------


def test_output_drives_the_pin(factory: MockFactory) -> None:
    out = GpioOutput(18, pin_factory=factory)
    assert isinstance(out, DigitalOut)
    assert factory.pin(18).state is False
    out.set(True)
    assert factory.pin(18).state is True
    assert out.value is True
    out.set(False)
    assert factory.pin(18).state is False


def test_active_low_output_and_initial_level(factory: MockFactory) -> None:
    out = GpioOutput(18, active_high=False, initial=True, pin_factory=factory)
    assert out.value is True
    assert factory.pin(18).state is False, "active low: logical on = pin low"
    out.set(False)
    assert factory.pin(18).state is True


def test_driving_a_closed_output_is_a_driver_error(factory: MockFactory) -> None:
    out = GpioOutput(18, pin_factory=factory)
    out.close()
    with pytest.raises(GpioUnavailable, match="GPIO18: cannot drive") as info:
        out.set(True)
    assert info.value.pin == 18


# -- opening failures -------------------------------------------------------------


def test_permission_denied_names_the_pin() -> None:
    denying = DenyingFactory({22})
    with pytest.raises(GpioUnavailable, match=r"GPIO22: cannot open: PermissionError") as info:
        GpioInput(22, pull_up=False, pin_factory=denying)
    assert isinstance(info.value, DriverError)
    assert info.value.pin == 22
    with pytest.raises(GpioUnavailable, match="GPIO22"):
        GpioOutput(22, pin_factory=denying)
    GpioInput(17, pull_up=False, pin_factory=denying)  # other pins still open


def test_pin_in_use_and_unknown_pin_are_unavailable(factory: MockFactory) -> None:
    holder = GpioOutput(18, pin_factory=factory)
    with pytest.raises(GpioUnavailable, match="GPIO18: cannot open: GPIOPinInUse"):
        GpioInput(18, pull_up=False, pin_factory=factory)
    with pytest.raises(GpioUnavailable, match="BOARD99: cannot open") as info:
        GpioInput("BOARD99", pull_up=False, pin_factory=factory)
    assert info.value.pin == "BOARD99"
    holder.close()


def test_default_factory_failure_explains_each_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpiozero import Device
    from gpiozero.exc import BadPinFactory, PinFactoryFallback

    def no_factory() -> Any:
        import warnings

        warnings.warn(PinFactoryFallback("Falling back from lgpio: can not open gpiochip"), stacklevel=1)
        raise BadPinFactory("Unable to load any default pin factory!")

    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setattr(Device, "_default_pin_factory", staticmethod(no_factory))
    with pytest.raises(GpioUnavailable) as info:
        GpioInput(17, pull_up=False, pin_factory=None)
    text = str(info.value)
    assert text.startswith("GPIO17: cannot open: BadPinFactory")
    assert "Falling back from lgpio: can not open gpiochip" in text


# -- factories -------------------------------------------------------------------------


def test_make_pin_factory_none_means_gpiozero_default() -> None:
    assert make_pin_factory(None) is None


def test_make_pin_factory_mock() -> None:
    made = make_pin_factory("mock")
    assert isinstance(made, MockFactory)
    assert made is not make_pin_factory("mock"), "a new factory per call"


def test_make_pin_factory_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"unknown GPIO pin factory 'sysfs'.*lgpio.*mock"):
        make_pin_factory("sysfs")
    with pytest.raises(ValueError):
        make_pin_factory("LGPIO")
    assert set(PIN_FACTORIES) == {"lgpio", "rpigpio", "pigpio", "native", "mock"}


def test_a_backend_that_is_not_installed_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gpiozero.pins.lgpio", None)  # import raises ImportError
    with pytest.raises(GpioUnavailable, match=r"pin factory lgpio: not installed \(needs .*'lgpio'") as info:
        make_pin_factory("lgpio")
    assert info.value.pin is None


def test_a_backend_that_cannot_open_the_chip_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("gpiozero.pins.lgpio")

    class LGPIOFactory:
        def __init__(self) -> None:
            raise PermissionError(13, "Permission denied", "/dev/gpiochip0")

    fake.LGPIOFactory = LGPIOFactory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gpiozero.pins.lgpio", fake)
    with pytest.raises(GpioUnavailable, match=r"pin factory lgpio: cannot start: PermissionError.*gpiochip0"):
        make_pin_factory("lgpio")


def test_pin_label() -> None:
    assert pin_label(17) == "GPIO17"
    assert pin_label("BOARD11") == "BOARD11"
