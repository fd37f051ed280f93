"""Resource estimation against edge-hardware budgets (Loihi 2 first): ``snndeploy estimate``.

The library call is :func:`snndeploy.hardware.estimate.estimate_model` (an :class:`EstimateJob`).

Flow: a model file -> the IR (``snndeploy.loader``; a ``.nir`` file through ``export.nir_io.from_nir``) -> per-layer
counts (``layers.layers_from_ir``) -> per-target placement (``loihi2``, ``loihi1``, ``edge``) against a
:class:`~snndeploy.hardware.budget.Budget` -> totals, fit verdict, NeuroBench metrics (``activity``) and
energy/latency ranges with their basis (``energy``). Targets are YAML profiles under ``profiles/`` (every number
sourced; unknowns stay ``null``).
"""
