"""BME280 driver against the register-map model, plus the model's own formulas."""

from __future__ import annotations

import errno
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lwm2md.drivers.base import DriverError, Sensor
from lwm2md.drivers.fake import bme280 as fake
from lwm2md.drivers.fake.bme280 import DEFAULT_CALIBRATION, FakeBME280
from lwm2md.drivers.fake.smbus import FakeSMBus
from lwm2md.drivers.i2c import bme280
from lwm2md.drivers.i2c._common import simulator
from lwm2md.drivers.i2c.bme280 import BME280, Calibration
from lwm2md.drivers.i2c.bus import BusUnavailable
from lwm2md.drivers.registry import create_sensor, driver_info
from lwm2md.drivers.simulated import SimulatedSensor


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make(chip: FakeBME280 | None = None, sleeps: Sleeps | None = None) -> tuple[BME280, FakeBME280]:
    bus = FakeSMBus(1)
    chip = chip or FakeBME280(0x76)
    bus.attach(chip)
    return BME280(bus, chip.address, sleep=sleeps if sleeps is not None else Sleeps()), chip


def writes(chip: FakeBME280) -> list[bytes]:
    return [data for kind, data in chip.transactions if kind == "w"]


# -- datasheet arithmetic ---------------------------------------------------------


def test_datasheet_example_through_the_driver() -> None:
    driver, chip = make()
    chip.set_raw(adc_t=519888, adc_p=415148)
    values = driver.read()
    # The datasheet's worked example (floating-point formulas): 25.08 Cel, 100653.27 Pa.
    assert values["temperature"] == 25.08
    assert values["pressure"] == 100653.27


def test_fixed_point_formulas_in_the_model_match_the_datasheet_example() -> None:
    t_fine = fake.t_fine_of(DEFAULT_CALIBRATION, 519888)
    assert t_fine == 128422
    assert fake.centi_celsius(t_fine) == 2508
    # The datasheet's table prints 25767236; executing its 64-bit formula gives
    # 25767233 (100653.25 Pa), 0.01 Pa from the floating-point result.
    assert fake.pressure_q24_8(DEFAULT_CALIBRATION, 415148, t_fine) == 25767233


def test_calibration_decoding_including_the_shared_h4_h5_byte() -> None:
    low, high = fake.calibration_image(DEFAULT_CALIBRATION)
    assert high[3:6] == bytes([0x13, 0x29, 0x03])  # H4=0x139, H5=0x032 share 0xE5
    cal = Calibration.parse(low, high)
    assert (cal.t1, cal.t2, cal.t3) == (27504, 26435, -1000)
    assert (cal.p1, cal.p8, cal.p9) == (36477, -14600, 6000)
    assert (cal.h1, cal.h2, cal.h3, cal.h4, cal.h5, cal.h6) == (75, 362, 0, 313, 50, 30)


s16 = st.integers(-32768, 32767)
u16 = st.integers(0, 65535)
s12 = st.integers(-2048, 2047)


@given(t1=u16, t2=s16, p1=u16, p9=s16, h1=st.integers(0, 255), h2=s16, h3=st.integers(0, 255),
       h4=s12, h5=s12, h6=st.integers(-128, 127))  # fmt: skip
def test_calibration_words_survive_register_packing(
    t1: int, t2: int, p1: int, p9: int, h1: int, h2: int, h3: int, h4: int, h5: int, h6: int
) -> None:
    words = dict(DEFAULT_CALIBRATION, T1=t1, T2=t2, P1=p1, P9=p9, H1=h1, H2=h2, H3=h3, H4=h4, H5=h5, H6=h6)
    cal = Calibration.parse(*fake.calibration_image(words))
    assert (cal.t1, cal.t2, cal.p1, cal.p9) == (t1, t2, p1, p9)
    assert (cal.h1, cal.h2, cal.h3, cal.h4, cal.h5, cal.h6) == (h1, h2, h3, h4, h5, h6)


@settings(max_examples=60, deadline=None)
@given(
    temperature=st.floats(-39.0, 84.0),
    humidity=st.floats(1.0, 99.0),
    pressure=st.floats(31000.0, 109000.0),
)
@example(temperature=73.25, humidity=73.2421875, pressure=31000.0)  # adc_P lands on 0x80000
def test_driver_reads_back_what_the_model_was_set_to(
    temperature: float, humidity: float, pressure: float
) -> None:
    """Driver (floating point) and model (fixed point) are independent versions of the datasheet."""
    driver, chip = make()
    chip.set_environment(temperature=temperature, humidity=humidity, pressure=pressure)
    values = driver.read()
    assert values["temperature"] == pytest.approx(temperature, abs=0.011)
    assert values["humidity"] == pytest.approx(humidity, abs=0.02)
    # the fake inverts the fixed-point formula, the driver uses the floating-point one: a few LSB (~0.2 Pa)
    assert values["pressure"] == pytest.approx(pressure, abs=1.0)


def test_humidity_is_clamped_to_0_100() -> None:
    driver, chip = make()
    chip.set_raw(adc_h=0)
    assert driver.read()["humidity"] == 0.0
    chip.set_raw(adc_h=0xFFFF)
    assert driver.read()["humidity"] == 100.0


# -- start-up -----------------------------------------------------------------------


def test_start_checks_id_then_resets_then_reads_calibration() -> None:
    driver, chip = make()
    assert chip.resets == 1
    assert chip.transactions[:3] == [("w", b"\xd0"), ("r", b"\x60"), ("w", b"\xe0\xb6")]
    # after the reset: status polled until the calibration copy is done, then both calibration blocks
    rest = chip.transactions[3:]
    assert rest[:4] == [("w", b"\xf3"), ("r", b"\x01"), ("w", b"\xf3"), ("r", b"\x00")]
    assert [data for kind, data in rest[4:] if kind == "w"] == [b"\x88", b"\xe1"]
    assert driver.calibration.t1 == 27504


@pytest.mark.parametrize("chip_id, hint", [(0x58, "BMP280"), (0x55, "not a BME280")])
def test_wrong_chip_id_is_refused_without_reset(chip_id: int, hint: str) -> None:
    chip = FakeBME280(0x76, chip_id=chip_id)
    with pytest.raises(DriverError, match=hint):
        make(chip)
    assert chip.resets == 0 and chip.transactions == [("w", b"\xd0"), ("r", bytes([chip_id]))]


def test_blank_calibration_is_refused() -> None:
    blank = dict.fromkeys(DEFAULT_CALIBRATION, 0)
    with pytest.raises(DriverError, match="calibration"):
        make(FakeBME280(0x76, calibration=blank))


# -- measuring ---------------------------------------------------------------------------


def test_forced_measurement_sequence() -> None:
    sleeps = Sleeps()
    driver, chip = make(FakeBME280(0x76, conversion_polls=3), sleeps)
    chip.transactions.clear()
    sleeps.clear()
    driver.read()
    assert writes(chip)[:2] == [b"\xf2\x01", b"\xf4\x25"], "ctrl_hum first, then ctrl_meas x1/x1/forced"
    assert chip.measurements == 1
    statuses = [chip.transactions[i + 1][1] for i, (k, d) in enumerate(chip.transactions) if d == b"\xf3"]
    assert statuses == [b"\x08", b"\x08", b"\x08", b"\x00"], "polls until measuring clears"
    assert chip.transactions[-2:][0] == ("w", b"\xf7") and len(chip.transactions[-1][1]) == 8
    assert sleeps[0] >= 0.0093, "waits the maximum conversion time before polling"


def test_humidity_oversampling_must_precede_ctrl_meas() -> None:
    """The model latches ctrl_hum at the ctrl_meas write, like the chip: the other order skips humidity."""
    bus = FakeSMBus(1)
    chip = bus.attach(FakeBME280(0x76))
    assert isinstance(chip, FakeBME280)
    bus.write_byte_data(0x76, 0xE0, 0xB6)
    bus.write_byte_data(0x76, 0xF4, 0x25)
    bus.write_byte_data(0x76, 0xF2, 0x01)
    bus.read_byte_data(0x76, 0xF3)
    bus.read_byte_data(0x76, 0xF3)
    assert bus.read_i2c_block_data(0x76, 0xFD, 2) == [0x80, 0x00]


def test_measurement_that_never_finishes_is_an_error() -> None:
    driver, chip = make()
    chip.stuck = True
    with pytest.raises(DriverError, match="did not finish"):
        driver.read()


def test_data_registers_at_reset_values_are_an_error() -> None:
    driver, chip = make()
    chip.set_raw(adc_t=0x80000, adc_p=0x80000, adc_h=0x8000)
    with pytest.raises(DriverError, match="no measurement data"):
        driver.read()


def test_one_channel_at_its_skip_marker_is_a_real_reading() -> None:
    """adc_T 0x80000 is 26.46 Cel with the example calibration (found by the round-trip property)."""
    driver, chip = make()
    chip.set_raw(adc_t=0x80000)
    assert driver.read()["temperature"] == 26.46
    chip.set_raw(adc_h=0x8000)
    assert driver.read()["humidity"] == pytest.approx(70.45, abs=0.01)


@pytest.mark.parametrize("raw", [{"adc_t": 0xFFFFF}, {"adc_t": 0}, {"adc_p": 0}, {"adc_p": 0xFFFFF}])
def test_implausible_data_is_an_error(raw: dict[str, int]) -> None:
    driver, chip = make()
    chip.set_raw(**raw)
    with pytest.raises(DriverError, match="implausible"):
        driver.read()


def test_nak_is_a_driver_error_naming_the_step() -> None:
    driver, chip = make()
    chip.nak = True
    with pytest.raises(DriverError, match="no acknowledge") as caught:
        driver.read()
    assert "bme280@0x76" in str(caught.value) and "ctrl_hum" in str(caught.value)
    chip.nak = False
    assert driver.read()["temperature"] == pytest.approx(25.08)


class ReadNak(FakeBME280):
    """Acknowledges writes but not reads once ``refuse`` is set."""

    refuse = False

    def on_read(self, length: int) -> bytes:
        if self.refuse:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        return super().on_read(length)


def test_nak_on_a_read_transfer_is_a_driver_error() -> None:
    driver, chip = make(ReadNak(0x76))
    assert isinstance(chip, ReadNak)
    chip.refuse = True
    with pytest.raises(DriverError, match="reading status: no acknowledge"):
        driver.read()


def test_close_releases_the_bus_and_later_reads_fail() -> None:
    driver, _ = make()
    driver.close()
    driver.close()
    assert isinstance(driver.bus, FakeSMBus) and driver.bus.closed
    with pytest.raises(DriverError, match="closed"):
        driver.read()


def test_is_a_sensor_with_datasheet_ranges() -> None:
    driver, _ = make()
    assert isinstance(driver, Sensor)
    shown = {k: (q.units, q.min_range, q.max_range) for k, q in driver.quantities().items()}
    assert shown == {
        "temperature": ("Cel", -40, 85),
        "humidity": ("%RH", 0, 100),
        "pressure": ("Pa", 30000, 110000),
    }


# -- registry: options, probe, simulator ------------------------------------------------------


@pytest.mark.parametrize(
    "options, named",
    [
        ({"address": 0x75}, "address"),
        ({"address": "0x76"}, "address"),
        ({"address": True}, "address"),
        ({"bus": -1}, "bus"),
        ({"bus": "1"}, "bus"),
        ({"adress": 0x76}, "adress"),
    ],
)
def test_bad_options_raise_value_error_naming_the_option(options: dict[str, object], named: str) -> None:
    for simulate in (False, True):
        with pytest.raises(ValueError, match=named):
            create_sensor("bme280", options, simulate=simulate)


def test_missing_adapter_raises_bus_unavailable() -> None:
    with pytest.raises(BusUnavailable, match="/dev/i2c-250"):
        create_sensor("bme280", {"bus": 250, "address": 0x77}, simulate=False)


def test_registration() -> None:
    info = driver_info("bme280")
    assert info.i2c_addresses == (0x76, 0x77)
    assert info.objects == (3303, 3304, 3315)


def test_probe_is_true_only_for_a_bme280_and_only_reads() -> None:
    probe = driver_info("bme280").probe
    assert probe is not None
    bus = FakeSMBus(1)
    good = FakeBME280(0x76)
    bus.attach(good)
    bus.attach(FakeBME280(0x77, chip_id=0x58))
    assert probe(bus, 0x76) is True
    assert probe(bus, 0x77) is False
    assert probe(bus, 0x10) is False  # nothing there: NAK
    assert good.resets == 0 and all(kind == "r" or len(data) == 1 for kind, data in good.transactions)


def test_probe_never_raises() -> None:
    probe = driver_info("bme280").probe
    assert probe is not None

    class Broken(FakeSMBus):
        def read_byte_data(self, i2c_addr: int, register: int) -> int:
            raise RuntimeError("driver bug")

    assert probe(Broken(1), 0x76) is False
    assert probe(250, 0x76) is False  # bus number without an adapter


def test_simulator_runs_the_real_driver_following_the_simulated_signal() -> None:
    sensor = create_sensor("bme280", {"address": 0x77, "seed": 4, "period": 100}, simulate=True)
    assert isinstance(sensor, BME280)
    assert isinstance(sensor.bus, FakeSMBus) and 0x77 in sensor.bus.chips
    assert sensor.read().keys() == {"temperature", "humidity", "pressure"}

    now = [1000.0]
    factory = simulator(
        bme280._make, FakeBME280, driver="bme280", addresses=bme280.ADDRESSES,
        quantities=bme280.QUANTITIES, time_source=lambda: now[0],
    )  # fmt: skip
    twin = factory({"seed": 4, "period": 100})
    reference = SimulatedSensor(bme280.QUANTITIES, 4, options={"period": 100}, time_source=lambda: now[0])
    for t in (1000.0, 1025.0, 1050.0):
        now[0] = t
        got, want = twin.read(), reference.read()
        assert got["temperature"] == pytest.approx(want["temperature"], abs=0.011)
        assert got["humidity"] == pytest.approx(want["humidity"], abs=0.02)
        assert got["pressure"] == pytest.approx(want["pressure"], abs=0.5)


def test_real_conversion_wait_is_short() -> None:
    """With the default sleep a read takes milliseconds, fine for the sampler's worker thread."""
    bus = FakeSMBus(1)
    bus.attach(FakeBME280(0x76))
    driver = BME280(bus)
    started = time.monotonic()
    driver.read()
    assert time.monotonic() - started < 0.5
