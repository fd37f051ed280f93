"""A pass-through Lava process that raises or stalls on a chosen time step (for lifecycle tests)."""

import time

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


class Relay(AbstractProcess):
    """Forwards spikes; on step ``fail_at`` it raises (mode 0) or sleeps ``stall_s`` seconds (mode 1)."""

    def __init__(self, shape: tuple, fail_at: int, mode: int = 0, stall_s: float = 3600.0):
        super().__init__(shape=shape, fail_at=fail_at, mode=mode, stall_s=stall_s)
        self.s_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.fail_at = Var(shape=(1,), init=fail_at)
        self.mode = Var(shape=(1,), init=mode)
        self.stall_s = Var(shape=(1,), init=stall_s)


@implements(proc=Relay, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PyRelayModel(PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    fail_at: np.ndarray = LavaPyType(np.ndarray, np.int32)
    mode: np.ndarray = LavaPyType(np.ndarray, np.int32)
    stall_s: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        data = self.s_in.recv()
        if self.time_step == int(self.fail_at[0]):
            if int(self.mode[0]) == 0:
                raise ValueError(f"injected failure at step {self.time_step}")
            time.sleep(float(self.stall_s[0]))
        self.s_out.send(data)
