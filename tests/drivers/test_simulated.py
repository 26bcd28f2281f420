"""Tests for the simulated sensor and the sensor driver registry."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lwm2md.drivers import registry
from lwm2md.drivers.base import STANDARD_QUANTITIES, DriverError, Quantity, Sensor, close_sensor
from lwm2md.drivers.registry import UnknownDriver, create_sensor, register_sensor, sensor_drivers
from lwm2md.drivers.simulated import SimulatedSensor


class Now:
    """A settable time source."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(registry, "_SENSORS", dict(registry._SENSORS))
    yield


# -- SimulatedSensor ----------------------------------------------------------


def test_same_seed_and_time_give_same_values() -> None:
    a = SimulatedSensor(["temperature", "humidity"], seed=3, time_source=Now(1234.5))
    b = SimulatedSensor(["temperature", "humidity"], seed=3, time_source=Now(1234.5))
    assert a.read() == b.read()
    assert set(a.read()) == {"temperature", "humidity"}


def test_seeds_and_times_change_the_signal() -> None:
    now = Now(100.0)
    a = SimulatedSensor(["temperature"], seed=1, time_source=now)
    b = SimulatedSensor(["temperature"], seed=2, time_source=now)
    assert a.read() != b.read()
    first = a.read()["temperature"]
    now.t = 250.0
    assert a.read()["temperature"] != first


def test_signal_is_smooth() -> None:
    now = Now(0.0)
    sensor = SimulatedSensor(["temperature"], time_source=now)
    previous = sensor.read()["temperature"]
    for step in range(1, 600):
        now.t = float(step)
        value = sensor.read()["temperature"]
        assert abs(value - previous) < 0.1
        previous = value


@given(seed=st.integers(min_value=0, max_value=2**31), t=st.floats(min_value=0, max_value=1e9))
def test_values_stay_near_their_centre(seed: int, t: float) -> None:
    values = SimulatedSensor(None, seed=seed, time_source=lambda: t).read()
    assert 18.5 <= values["temperature"] <= 24.5
    assert 35.0 <= values["humidity"] <= 55.0
    assert 101025.0 <= values["pressure"] <= 101625.0
    assert values["illuminance"] >= 0.0
    for kind, value in values.items():
        quantity = STANDARD_QUANTITIES[kind]
        assert quantity.min_range is not None and quantity.max_range is not None
        assert quantity.min_range <= value <= quantity.max_range


def test_none_means_every_standard_quantity_with_senml_units() -> None:
    quantities = SimulatedSensor(None).quantities()
    assert set(quantities) == set(STANDARD_QUANTITIES)
    assert quantities["temperature"].units == "Cel"
    assert quantities["humidity"].units == "%RH"
    assert quantities["pressure"].units == "Pa"
    assert quantities["illuminance"].units == "lx"


def test_custom_quantity_is_kept_and_simulated_inside_its_range() -> None:
    co2 = Quantity("co2", "ppm", 400.0, 2000.0)
    sensor = SimulatedSensor([co2, "temperature"], time_source=Now(42.0))
    assert sensor.quantities()["co2"] == co2
    assert 400.0 <= sensor.read()["co2"] <= 2000.0


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown quantity 'smell'"):
        SimulatedSensor(["smell"])
    with pytest.raises(ValueError, match="at least one"):
        SimulatedSensor([])


def test_set_value_pins_and_releases() -> None:
    sensor = SimulatedSensor(["temperature", "humidity"], time_source=Now(10.0))
    generated = sensor.read()["temperature"]
    sensor.set_value("temperature", 99.25)
    assert sensor.read()["temperature"] == 99.25
    sensor.set_value("temperature", None)
    assert sensor.read()["temperature"] == generated
    with pytest.raises(KeyError):
        sensor.set_value("pressure", 1.0)


def test_fail_makes_reads_raise_until_cleared() -> None:
    sensor = SimulatedSensor(["temperature"])
    sensor.fail(True)
    with pytest.raises(DriverError):
        sensor.read()
    sensor.fail(False)
    assert "temperature" in sensor.read()


def test_it_satisfies_the_sensor_protocol_and_closes() -> None:
    sensor = SimulatedSensor(["voltage"])
    assert isinstance(sensor, Sensor)
    close_sensor(sensor)


def test_close_sensor_tolerates_missing_and_failing_close(caplog: pytest.LogCaptureFixture) -> None:
    class NoClose:
        name = "plain"

        def quantities(self) -> dict[str, Quantity]:
            return {}

        def read(self) -> dict[str, float]:
            return {}

    class BadClose(NoClose):
        name = "bad"

        def close(self) -> None:
            raise OSError("bus gone")

    close_sensor(NoClose())
    close_sensor(BadClose())
    assert "sensor bad: close failed" in caplog.text


def test_period_option_and_validation() -> None:
    slow = SimulatedSensor(["temperature"], options={"period": 3600}, time_source=Now(60.0))
    fast = SimulatedSensor(["temperature"], options={"period": 60}, time_source=Now(60.0))
    assert slow.read() != fast.read()
    with pytest.raises(ValueError, match="period"):
        SimulatedSensor(["temperature"], options={"period": 0})
    with pytest.raises(ValueError, match="period"):
        SimulatedSensor(["temperature"], options={"period": "slow"})


def test_from_options() -> None:
    sensor = SimulatedSensor.from_options({"quantities": ["humidity"], "seed": 7})
    assert list(sensor.quantities()) == ["humidity"]
    with pytest.raises(ValueError, match="unknown option"):
        SimulatedSensor.from_options({"bus": 1})
    with pytest.raises(ValueError, match="quantities"):
        SimulatedSensor.from_options({"quantities": "humidity"})
    with pytest.raises(ValueError, match="seed"):
        SimulatedSensor.from_options({"seed": "x"})
    lenient = SimulatedSensor.from_options({"bus": 1}, default_quantities=["current"], strict=False)
    assert list(lenient.quantities()) == ["current"]


# -- registry -----------------------------------------------------------------


def test_simulated_driver_is_registered() -> None:
    assert "simulated" in sensor_drivers()
    sensor = create_sensor("simulated", {"quantities": ["temperature"]}, simulate=False)
    assert list(sensor.quantities()) == ["temperature"]
    same = create_sensor("simulated", {"quantities": ["temperature"]}, simulate=True)
    assert isinstance(same, SimulatedSensor)


def test_simulated_driver_rejects_foreign_options() -> None:
    with pytest.raises(ValueError, match="unknown option"):
        create_sensor("simulated", {"address": 0x76}, simulate=False)


def test_unknown_driver_lists_known_names() -> None:
    with pytest.raises(UnknownDriver) as info:
        create_sensor("bme999", {}, simulate=True)
    assert isinstance(info.value, ValueError)
    assert "bme999" in str(info.value)
    assert "simulated" in str(info.value)


@pytest.mark.usefixtures("clean_registry")
def test_simulate_replaces_a_real_driver_by_its_twin() -> None:
    calls: list[Mapping[str, Any]] = []
    real_quantity = Quantity("temperature", "Cel", -40.0, 85.0)

    @register_sensor("fakebme", quantities=(real_quantity, "humidity", "pressure"))
    def _factory(options: Mapping[str, Any]) -> Sensor:
        calls.append(options)
        return SimulatedSensor(["temperature"], name="real")

    assert "fakebme" in sensor_drivers()
    twin = create_sensor("fakebme", {"bus": 1, "address": 0x76}, simulate=True)
    assert calls == []
    assert twin.name == "fakebme"
    assert twin.quantities()["temperature"] == real_quantity
    assert set(twin.quantities()) == {"temperature", "humidity", "pressure"}

    real = create_sensor("fakebme", {"bus": 1}, simulate=False)
    assert real.name == "real"
    assert calls == [{"bus": 1}]


@pytest.mark.usefixtures("clean_registry")
def test_twin_without_declared_quantities_measures_everything() -> None:
    @register_sensor("mystery")
    def _factory(options: Mapping[str, Any]) -> Sensor:
        raise AssertionError("must not be called when simulating")

    twin = create_sensor("mystery", {}, simulate=True)
    assert set(twin.quantities()) == set(STANDARD_QUANTITIES)


@pytest.mark.usefixtures("clean_registry")
def test_duplicate_registration_is_an_error() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_sensor("simulated")(lambda options: SimulatedSensor())
