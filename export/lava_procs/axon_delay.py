"""snndeploy's own Lava process: a per-neuron axonal delay line (CPU models, fixed_pt and floating_pt).

Lava's ``DelayDense``/``DelaySparse`` delay spikes inside a dense synapse; ``Conv`` has no delay at all (and netx
drops SLAYER's conv delays silently). ``AxonDelay`` sits between a neuron group and whatever follows it and emits
each neuron's spikes ``delays[n]`` steps later, adding no step of its own (delay 0 passes spikes straight on).
It has no Loihi implementation here: on the chip such delays are axon delays of the compiled network.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class AxonDelay(AbstractProcess):
    """Delay each of ``delays.shape`` neurons' spikes by ``delays[n]`` (0..``max_delay``) time steps."""

    def __init__(self, *, delays: np.ndarray, max_delay: int | None = None, name: str | None = None) -> None:
        delays = np.asarray(delays, dtype=np.int64)
        max_delay = int(delays.max(initial=0)) if max_delay is None else int(max_delay)
        super().__init__(delays=delays, max_delay=max_delay, name=name)
        shape = delays.shape
        self.s_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.delays = Var(shape=shape, init=delays)
        self.buffer = Var(shape=(*shape, max_delay + 1), init=0)


class _AxonDelayModel(PyLoihiProcessModel):
    delays: np.ndarray = LavaPyType(np.ndarray, int)

    def run_spk(self) -> None:
        spikes = self.s_in.recv()
        slots = self.delays[..., None]
        current = np.take_along_axis(self.buffer, slots, axis=-1)
        np.put_along_axis(self.buffer, slots, current + spikes[..., None], axis=-1)
        out = self.buffer[..., 0].copy()
        self.buffer[..., :-1] = self.buffer[..., 1:]
        self.buffer[..., -1] = 0
        self.s_out.send(out)


@implements(proc=AxonDelay, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyAxonDelayFixed(_AxonDelayModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    buffer: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)


@implements(proc=AxonDelay, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyAxonDelayFloat(_AxonDelayModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    buffer: np.ndarray = LavaPyType(np.ndarray, float)
