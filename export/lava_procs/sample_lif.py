"""Lava's LIF for samples run back to back in one build, each exactly as if it ran alone from step 0.

Every ``sample_steps`` steps, at the first step of each sample (Lava's 1-based ``time_step % sample_steps == 1``),
the neuron zeroes ``u`` and ``v`` and drops the synaptic input of that step: in a separate run that input is zero
(a synapse delivers the previous step's spikes, and there is no previous step), here it is the previous sample's
last spikes. Every layer does this at the same step, so a bias drives every layer from the sample's first step
as it would in a separate run, and the previous sample leaves nothing behind.

``active_steps`` (optional, one value per neuron): after that many steps the neuron stays at rest (zero ``u``
and ``v``, no spikes), so that a copy of the network padded with idle samples (samples are shared out over copies
unevenly) adds no activity, whatever its biases.

``spike_count`` counts each neuron's spikes over the first ``count_steps`` steps (all steps if None): a
simulation reads it once at the end instead of draining the spikes or counting them in extra processes.

``bias_in`` adds a bias mantissa per neuron and step to the layer's own (for a sample fed as the input layer's
bias: one value per sample, sent for each of its steps); unconnected, it adds zero. ``u_out`` and ``v_out`` carry
``u`` and ``v`` after every step (what a Var read after the step would return; see ``probed_lif``).
The dynamics are otherwise Lava's bit-accurate (or floating-point) LIF model, unchanged.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import PyLifModelBitAcc, PyLifModelFloat
from lava.proc.lif.process import LIF


class SampleLIF(LIF):
    """``LIF`` that starts afresh at every sample's first step; ``bias_in``, ``u_out`` and ``v_out`` ports."""

    def __init__(self, *, sample_steps: int, active_steps: np.ndarray | None = None, count_steps: int | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if sample_steps < 1:
            raise ValueError("sample_steps must be at least 1")
        self.proc_params["sample_steps"] = int(sample_steps)
        self.proc_params["active_steps"] = None if active_steps is None else np.asarray(active_steps, np.int64)
        self.proc_params["count_steps"] = count_steps
        self.spike_count = Var(shape=self.s_out.shape, init=0)
        self.bias_in = InPort(shape=self.s_out.shape)
        self.u_out = OutPort(shape=self.s_out.shape)
        self.v_out = OutPort(shape=self.s_out.shape)


class _SampleStart:
    implements_process = None  # Lava's decorator refuses to re-target a subclass of a decorated model otherwise

    def _inputs(self) -> tuple[np.ndarray, np.ndarray]:
        """This step's synaptic input and fed bias; at a sample's first step the state is zeroed and the synaptic
        input dropped."""
        a_in, fed = self.a_in.recv(), self.bias_in.recv()
        steps = self.proc_params["sample_steps"]
        if self.time_step % steps == 1 % steps:
            self.u[:] = 0
            self.v[:] = 0
            a_in = np.zeros_like(a_in)
        return a_in, fed

    def _finish(self) -> None:
        spikes = self.spiking_activation()
        active = self.proc_params["active_steps"]
        if active is not None:
            resting = self.time_step > active
            spikes = np.where(resting, False, spikes)
            self.u[resting] = 0
            self.v[resting] = 0
        self.reset_voltage(spike_vector=spikes)
        until = self.proc_params["count_steps"]
        if until is None or self.time_step <= until:
            self.spike_count += spikes.astype(self.spike_count.dtype)
        self.s_out.send(spikes)
        self.u_out.send(self.u)
        self.v_out.send(self.v)


class _Fixed(_SampleStart):
    def run_spk(self) -> None:
        a_in, fed = self._inputs()
        self.scale_bias()
        self.effective_bias = self.effective_bias + np.left_shift(fed.astype(np.int32), self.bias_exp)
        if not self.isthrscaled:
            self.scale_threshold()
        self.subthr_dynamics(activation_in=a_in)
        self._finish()


class _Float(_SampleStart):
    def run_spk(self) -> None:
        a_in, fed = self._inputs()
        self.subthr_dynamics(activation_in=a_in)
        self.v[:] += fed
        self._finish()


def _model(base: type, mixin: type, mode: str) -> type:
    fixed = mode == "fixed_pt"
    state = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24) if fixed else \
        LavaPyType(PyOutPort.VEC_DENSE, float)
    fed = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24) if fixed else LavaPyType(PyInPort.VEC_DENSE, float)
    cls = type(f"PySampleLif{'Fixed' if fixed else 'Float'}", (mixin, base),
               {"bias_in": fed, "u_out": state, "v_out": state, "__module__": __name__,
                "spike_count": LavaPyType(np.ndarray, np.int32, precision=24)})
    return implements(proc=SampleLIF, protocol=LoihiProtocol)(requires(CPU)(tag(mode)(cls)))


# Lava finds a process's models among the classes of the modules beside it: each must be a module attribute.
PySampleLifFixed = _model(PyLifModelBitAcc, _Fixed, "fixed_pt")
PySampleLifFloat = _model(PyLifModelFloat, _Float, "floating_pt")
