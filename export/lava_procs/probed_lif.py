"""Lava's LIF with its current ``u`` and voltage ``v`` sent out through ports every step.

Reading ``u``/``v`` as Vars after every step costs one message per value (Lava sends Var data element by
element); a port sends each step's whole array, which an ``Extractor`` drains in one receive. The dynamics are
Lava's own models, unchanged: each model here subclasses Lava's (bit-accurate or floating-point) LIF model and
only sends ``u`` and ``v`` after Lava's ``run_spk``, i.e. the values a Var read after the step would return.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import PyLifModelBitAcc, PyLifModelFloat
from lava.proc.lif.process import LIF


class ProbedLIF(LIF):
    """``LIF`` with ``u_out`` and ``v_out`` ports carrying ``u`` and ``v`` after every step."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.u_out = OutPort(shape=self.s_out.shape)
        self.v_out = OutPort(shape=self.s_out.shape)


class _SendsState:
    implements_process = None  # Lava's decorator refuses to re-target a subclass of a decorated model otherwise

    def run_spk(self) -> None:
        super().run_spk()
        self.u_out.send(self.u)
        self.v_out.send(self.v)


def _model(proc: type, base: type, mode: str) -> type:
    """The ``mode`` model of ``proc``: Lava's ``base`` model plus the two state ports."""
    port = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24) if mode == "fixed_pt" else \
        LavaPyType(PyOutPort.VEC_DENSE, float)
    cls = type(f"Py{proc.__name__}{'Fixed' if mode == 'fixed_pt' else 'Float'}", (_SendsState, base),
               {"u_out": port, "v_out": port, "__module__": __name__})
    return implements(proc=proc, protocol=LoihiProtocol)(requires(CPU)(tag(mode)(cls)))


# Lava finds a process's models among the classes of the modules beside it: each must be a module attribute.
PyProbedLifFixed = _model(ProbedLIF, PyLifModelBitAcc, "fixed_pt")
PyProbedLifFloat = _model(ProbedLIF, PyLifModelFloat, "floating_pt")
