"""Small Lava networks for the lifecycle tests: source -> [relay] -> dense -> LIF -> sink."""

import numpy as np
from lava.proc.dense.process import Dense
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import RingBuffer as Source
from lava.proc.lif.process import LIF

from lava_procs.faulty import Relay


def chain(steps: int, relay: Relay | None = None, n: int = 4) -> tuple:
    """Return (sink, relay); run the network through the sink."""
    source = Source(data=np.ones((n, steps), dtype=np.int32))
    dense = Dense(weights=np.eye(n, dtype=np.int32) * 100)
    lif = LIF(shape=(n,), du=4095, dv=0, vth=150)
    sink = Sink(shape=(n,), buffer=steps)
    if relay is None:
        source.s_out.connect(dense.s_in)
    else:
        source.s_out.connect(relay.s_in)
        relay.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)
    return sink, relay
