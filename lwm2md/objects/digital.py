"""GPIO pins as IPSO Digital Input (3200), Push Button (3347) and Digital Output (3201).

Inputs (3200, 3347) report a *state*: the pin's logical level (gpiozero's
active level) inverted by Polarity (5502). Every debounced change of the
state is an edge, rising when the state becomes true; edges matching Edge
Selection (5504: 1 falling, 2 rising, 3 both) increment the counter (5501).
A polarity change flips the state without counting. Debounce (5503, ms) is
done here on the injected clock: a new level counts only after it stayed
unchanged for the debounce time, so a bouncing contact counts once.

3347 has no polarity, debounce or edge resources: the values given at
construction apply (a press is a rising edge of the state).

Outputs (3201): a server Write of 5550 drives the pin to ``state XOR
polarity`` (5551 true = inverted); 5550 keeps the logical state.

Edges arrive on gpiozero's thread and are moved to the asyncio loop the
instance was built on (``loop.call_soon_threadsafe``); all state changes and
tree notifications happen on that loop. A pin that could not be opened gives
an instance whose state reads fail with DriverFault (5.00) naming the pin.

Only resources in the object's definition are populated. Resources a
Replace write makes absent fall back to the values given at construction.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal, get_args

from lwm2md.drivers.base import DriverError
from lwm2md.drivers.gpio.pins import DigitalIn, DigitalOut, GpioInput, GpioOutput, PinSpec, pin_label
from lwm2md.engine.clock import Clock, LoopClock, TimerHandle
from lwm2md.errors import BadRequest, DriverFault
from lwm2md.model.types import ObjectDef, ResourceData
from lwm2md.objects.tree import ObjectInstance, ObjectTree, Reader

LOG = logging.getLogger(__name__)

DIGITAL_INPUT = 3200
DIGITAL_OUTPUT = 3201
PUSH_BUTTON = 3347

INPUT_STATE = 5500
INPUT_COUNTER = 5501
INPUT_POLARITY = 5502
INPUT_DEBOUNCE = 5503
EDGE_SELECTION = 5504
COUNTER_RESET = 5505
OUTPUT_STATE = 5550
OUTPUT_POLARITY = 5551
APPLICATION_TYPE = 5750
SENSOR_TYPE = 5751
TIMESTAMP = 5518

EDGE_FALLING, EDGE_RISING, EDGE_BOTH = 1, 2, 3
EdgeName = Literal["falling", "rising", "both"]
EDGE_CODES: dict[str, int] = {"falling": EDGE_FALLING, "rising": EDGE_RISING, "both": EDGE_BOTH}
MAX_DEBOUNCE_MS = 60_000

GpioKind = Literal["input", "output", "button"]
GPIO_OBJECTS: dict[str, int] = {"input": DIGITAL_INPUT, "output": DIGITAL_OUTPUT, "button": PUSH_BUTTON}


def edge_code(edge: EdgeName | int) -> int:
    """Edge Selection value (1..3) for a config name or a code; ValueError otherwise."""
    if isinstance(edge, str):
        if edge in EDGE_CODES:
            return EDGE_CODES[edge]
    elif isinstance(edge, int) and not isinstance(edge, bool) and EDGE_FALLING <= edge <= EDGE_BOTH:
        return edge
    raise ValueError(f"edge must be one of {', '.join(get_args(EdgeName))} or 1..3, not {edge!r}")


def _check_debounce(debounce_ms: int) -> int:
    if isinstance(debounce_ms, bool) or not isinstance(debounce_ms, int):
        raise ValueError(f"debounce_ms must be an integer, not {debounce_ms!r}")
    if not 0 <= debounce_ms <= MAX_DEBOUNCE_MS:
        raise ValueError(f"debounce_ms must be 0..{MAX_DEBOUNCE_MS}, not {debounce_ms}")
    return debounce_ms


def _bool(path: str, data: ResourceData) -> bool:
    if not isinstance(data, bool):
        raise BadRequest(f"{path}: {data!r} is not a Boolean")
    return data


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class DigitalInputInstance(ObjectInstance):
    """A 3200 Digital Input or 3347 Push Button instance fed by a :class:`DigitalIn`.

    ``driver`` is the opened input, or the DriverError that kept it from
    opening (the instance is then faulted). ``loop`` receives the edges;
    default: the loop running at construction. Without one, edges are
    dropped (logged once). ``debounce_ms`` (0..60000), ``edge`` (1..3) and
    ``polarity`` are the initial settings and the fallbacks when a Replace
    write removes their resources; ValueError for values out of range.
    """

    def __init__(
        self,
        definition: ObjectDef,
        iid: int,
        driver: DigitalIn | DriverError,
        *,
        clock: Clock,
        debounce_ms: int = 0,
        edge: EdgeName | int = EDGE_RISING,
        polarity: bool = False,
        application_type: str | None = None,
        sensor_type: str | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if definition.oid not in (DIGITAL_INPUT, PUSH_BUTTON):
            raise ValueError(f"object {definition.oid} is not a digital input object")
        super().__init__(definition, iid)
        self.clock = clock
        self._default_debounce = _check_debounce(debounce_ms)
        self._default_edge = edge_code(edge)
        self._default_polarity = bool(polarity)
        self._debounce_ms = self._default_debounce
        self._edge = self._default_edge
        self._polarity = self._default_polarity
        self._loop = loop if loop is not None else _running_loop()
        self._warned_no_loop = False
        self._level = False  # debounced logical pin level, before polarity
        self._timer: TimerHandle | None = None
        self._counter = 0
        self._closed = False
        self._driver: DigitalIn | None = None
        self._fault: str | None = None
        if isinstance(driver, DriverError):
            self._fault = str(driver)
        else:
            # Listen before sampling: an edge in between is queued and compared with the sample.
            driver.on_change(self._from_driver)
            try:
                self._level = driver.value
            except DriverError as exc:
                self._fault = str(exc)
                self._closed = True
                driver.close()
            else:
                self._driver = driver
        defined = self.definition.resources
        self._values[INPUT_STATE] = self._level != self._polarity
        self.handle(INPUT_STATE, read=self._reader(INPUT_STATE))
        if INPUT_COUNTER in defined:
            self._values[INPUT_COUNTER] = 0
            self.handle(INPUT_COUNTER, read=self._reader(INPUT_COUNTER))
        if INPUT_POLARITY in defined:
            self._values[INPUT_POLARITY] = self._polarity
            self.handle(INPUT_POLARITY, write=self._write_polarity)
        if INPUT_DEBOUNCE in defined:
            self._values[INPUT_DEBOUNCE] = self._debounce_ms
            self.handle(INPUT_DEBOUNCE, write=self._write_debounce)
        if EDGE_SELECTION in defined:
            self._values[EDGE_SELECTION] = self._edge
            self.handle(EDGE_SELECTION, write=self._write_edge)
        if COUNTER_RESET in defined:
            self.handle(COUNTER_RESET, execute=self._execute_reset)
        if APPLICATION_TYPE in defined and application_type is not None:
            self._values[APPLICATION_TYPE] = application_type
        if SENSOR_TYPE in defined and sensor_type is not None:
            self._values[SENSOR_TYPE] = sensor_type

    # -- inspection ---------------------------------------------------------------

    @property
    def state(self) -> bool:
        """The reported state (5500): debounced level XOR polarity."""
        return self._level != self._polarity

    @property
    def counter(self) -> int:
        """Edges counted since start or the last reset."""
        return self._counter

    @property
    def fault(self) -> str | None:
        """Why the pin is unusable, or None."""
        return self._fault

    @property
    def driver(self) -> DigitalIn | None:
        """The input driver (None when faulted at construction)."""
        return self._driver

    # -- edges -------------------------------------------------------------------

    def _from_driver(self, level: bool) -> None:
        """Driver callback, on any thread: hand the level to the loop."""
        loop = self._loop
        if loop is None:
            if not self._warned_no_loop:
                self._warned_no_loop = True
                LOG.warning("%s: no event loop; pin changes are ignored", self.path)
            return
        try:
            loop.call_soon_threadsafe(self.level_changed, level)
        except RuntimeError:  # the loop is closed: the daemon is shutting down
            LOG.debug("%s: change after the loop closed ignored", self.path)

    def level_changed(self, level: bool) -> None:
        """Take a new pin level (on the loop's thread); counts once it is stable for the debounce time."""
        if self._closed:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if level == self._level:
            return  # back to the settled level before the debounce time passed
        if self._debounce_ms <= 0:
            self._settle(level)
            return
        self._timer = self.clock.call_at(
            self.clock.now() + self._debounce_ms / 1000.0, lambda: self._debounced(level)
        )

    def _debounced(self, level: bool) -> None:
        """Timer: ``level`` held for the debounce time (any newer level cancelled this timer)."""
        self._timer = None
        self._settle(level)

    def _settle(self, level: bool) -> None:
        """Accept ``level`` (different from the settled one) as the new level; count the edge."""
        self._level = level
        state = self.state
        if self._edge == EDGE_BOTH or (self._edge == EDGE_RISING) == state:
            self._counter += 1
        defined = self.definition.resources
        with self.batch():
            self.set(INPUT_STATE, state)
            if INPUT_COUNTER in defined:
                self.set(INPUT_COUNTER, self._counter)
            if TIMESTAMP in defined:
                self.set(TIMESTAMP, int(self.clock.wall()))

    def reset_counter(self) -> None:
        """Set the counter (5501) to 0."""
        self._counter = 0
        if INPUT_COUNTER in self.definition.resources:
            self.set(INPUT_COUNTER, 0)

    def close(self) -> None:
        """Stop taking edges and release the pin; idempotent."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._driver is not None:
            self._driver.close()
            self._driver = None

    # -- resource handlers --------------------------------------------------------

    def _reader(self, rid: int) -> Reader:
        def read() -> ResourceData:
            if self._fault is not None:
                raise DriverFault(f"{self.path}/{rid}: {self._fault}")
            return self._values[rid]

        return read

    def _set_polarity(self, polarity: bool) -> None:
        self._polarity = polarity
        self.set(INPUT_STATE, self.state)

    def _write_polarity(self, data: ResourceData) -> None:
        self._set_polarity(_bool(f"{self.path}/{INPUT_POLARITY}", data))

    def _write_debounce(self, data: ResourceData) -> None:
        if isinstance(data, bool) or not isinstance(data, int) or not 0 <= data <= MAX_DEBOUNCE_MS:
            raise BadRequest(f"{self.path}/{INPUT_DEBOUNCE}: {data!r} is not 0..{MAX_DEBOUNCE_MS} ms")
        self._debounce_ms = data

    def _write_edge(self, data: ResourceData) -> None:
        if isinstance(data, bool) or not isinstance(data, int) or not EDGE_FALLING <= data <= EDGE_BOTH:
            raise BadRequest(f"{self.path}/{EDGE_SELECTION}: {data!r} is not 1..3")
        self._edge = data

    def _execute_reset(self, args: str | None) -> None:
        self.reset_counter()

    def remove(self, rid: int) -> None:
        """Make ``rid`` absent; a removed setting falls back to its construction value."""
        super().remove(rid)
        if rid == INPUT_POLARITY:
            self._set_polarity(self._default_polarity)
        elif rid == INPUT_DEBOUNCE:
            self._debounce_ms = self._default_debounce
        elif rid == EDGE_SELECTION:
            self._edge = self._default_edge


class DigitalOutputInstance(ObjectInstance):
    """A 3201 Digital Output instance driving a :class:`DigitalOut`.

    At construction the pin is driven to ``initial XOR polarity``. ``driver``
    may be the DriverError that kept the pin from opening: reads and writes
    of 5550 then fail with DriverFault.
    """

    def __init__(
        self,
        definition: ObjectDef,
        iid: int,
        driver: DigitalOut | DriverError,
        *,
        initial: bool = False,
        polarity: bool = False,
        application_type: str | None = None,
    ) -> None:
        if definition.oid != DIGITAL_OUTPUT:
            raise ValueError(f"object {definition.oid} is not a digital output object")
        super().__init__(definition, iid)
        self._default_polarity = bool(polarity)
        self._polarity = self._default_polarity
        self._driver: DigitalOut | None = None
        self._fault: str | None = None
        if isinstance(driver, DriverError):
            self._fault = str(driver)
        else:
            self._driver = driver
            try:
                driver.set(bool(initial) != self._polarity)
            except DriverError as exc:
                self._fault = str(exc)
        defined = self.definition.resources
        self._values[OUTPUT_STATE] = bool(initial)
        self.handle(OUTPUT_STATE, read=self._read_state, write=self._write_state)
        if OUTPUT_POLARITY in defined:
            self._values[OUTPUT_POLARITY] = self._polarity
            self.handle(OUTPUT_POLARITY, write=self._write_polarity)
        if APPLICATION_TYPE in defined and application_type is not None:
            self._values[APPLICATION_TYPE] = application_type

    @property
    def state(self) -> bool:
        """The logical state (5550)."""
        return bool(self._values[OUTPUT_STATE])

    @property
    def polarity(self) -> bool:
        """True when the pin is driven inverted."""
        return self._polarity

    @property
    def fault(self) -> str | None:
        """Why the pin is unusable, or None."""
        return self._fault

    @property
    def driver(self) -> DigitalOut | None:
        """The output driver (None once closed or when faulted at construction)."""
        return self._driver

    def _drive(self, state: bool, polarity: bool) -> None:
        if self._fault is not None or self._driver is None:
            raise DriverFault(f"{self.path}/{OUTPUT_STATE}: {self._fault or 'pin closed'}")
        try:
            self._driver.set(state != polarity)
        except DriverError as exc:
            raise DriverFault(f"{self.path}/{OUTPUT_STATE}: {exc}") from exc

    def _read_state(self) -> ResourceData:
        if self._fault is not None:
            raise DriverFault(f"{self.path}/{OUTPUT_STATE}: {self._fault}")
        return self._values[OUTPUT_STATE]

    def _write_state(self, data: ResourceData) -> None:
        self._drive(_bool(f"{self.path}/{OUTPUT_STATE}", data), self._polarity)

    def _write_polarity(self, data: ResourceData) -> None:
        polarity = _bool(f"{self.path}/{OUTPUT_POLARITY}", data)
        if self._fault is None:
            self._drive(self.state, polarity)
        self._polarity = polarity

    def remove(self, rid: int) -> None:
        """Make ``rid`` absent; removing 5551 re-drives the pin with the construction polarity."""
        super().remove(rid)
        if rid == OUTPUT_POLARITY:
            if self._fault is None:
                self._drive(self.state, self._default_polarity)
            self._polarity = self._default_polarity

    def close(self) -> None:
        """Release the pin; idempotent."""
        if self._driver is not None:
            self._driver.close()
            self._driver = None


GpioInstance = DigitalInputInstance | DigitalOutputInstance


def build_gpio_instance(
    tree: ObjectTree,
    *,
    kind: GpioKind,
    pin: PinSpec,
    iid: int | None = None,
    pin_factory: Any = None,
    pull_up: bool | None = None,
    active_high: bool = True,
    debounce_ms: int = 0,
    edge: EdgeName | int = "rising",
    initial: bool = False,
    application_type: str | None = None,
    clock: Clock | None = None,
) -> GpioInstance:
    """Open ``pin`` and add it to ``tree`` as /3200 (input), /3201 (output) or /3347 (button).

    ``iid`` None takes the lowest free instance ID. Inputs: ``pull_up`` True
    or False sets the pull and makes the active level its opposite;
    None leaves an input floating with ``active_high`` choosing the active
    level, while a button defaults to a pull-up (pressed = pulled low).
    Outputs: ``active_high`` and ``initial`` (logical) go to the pin.
    ``clock`` (default: the loop clock) times the debounce. Call from the
    event loop's thread (edges go to the running loop). A pin that cannot be
    opened is logged and gives a faulted instance (reads fail naming it);
    ValueError for a bad kind, edge, debounce or an iid already in use.
    """
    try:
        oid = GPIO_OBJECTS[kind]
    except KeyError:
        raise ValueError(f"GPIO kind must be one of {', '.join(GPIO_OBJECTS)}, not {kind!r}") from None
    code = edge_code(edge)
    _check_debounce(debounce_ms)
    obj = tree.ensure_object(oid)
    if iid is None:
        iid = obj.free_iid()
    elif iid in obj.instances:
        raise ValueError(f"/{oid}/{iid} already exists")
    instance: GpioInstance
    if kind == "output":
        out: DigitalOut | DriverError
        try:
            out = GpioOutput(pin, active_high=active_high, initial=initial, pin_factory=pin_factory)
        except DriverError as exc:
            LOG.error("/%d/%d: %s; its state cannot be read or written", oid, iid, exc)
            out = exc
        instance = DigitalOutputInstance(
            obj.definition, iid, out, initial=initial, application_type=application_type
        )
    else:
        pull = True if kind == "button" and pull_up is None else pull_up
        inp: DigitalIn | DriverError
        try:
            inp = GpioInput(
                pin, pull_up=pull, active_state=active_high if pull is None else None, pin_factory=pin_factory
            )
        except DriverError as exc:
            LOG.error("/%d/%d: %s; its state cannot be read", oid, iid, exc)
            inp = exc
        instance = DigitalInputInstance(
            obj.definition, iid, inp, clock=clock or LoopClock(), debounce_ms=debounce_ms, edge=code,
            application_type=application_type, sensor_type=pin_label(pin),
        )  # fmt: skip
    try:
        tree.add_instance(instance)
    except Exception:
        instance.close()
        raise
    return instance
