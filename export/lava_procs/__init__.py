"""snndeploy's own Lava processes, in a folder of their own.

When Lava compiles a custom process it imports every module of the process's parent package and re-executes every
``.py`` file beside it by file path, at each compile (lava.magma.compiler.compiler_graphs). Keeping processes here,
away from the exporter's other modules, keeps that scan small and free of side effects.
"""

from snndeploy.export.lava_procs.axon_delay import AxonDelay
from snndeploy.export.lava_procs.probed_lif import ProbedLIF
from snndeploy.export.lava_procs.sample_lif import SampleLIF

__all__ = ["AxonDelay", "ProbedLIF", "SampleLIF"]
