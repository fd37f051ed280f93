"""SLAYER training: loop, checkpoints, resume, evaluation, DDP.

* ``snndeploy.train.loop``: :class:`~snndeploy.train.loop.Trainer`, :class:`~snndeploy.train.loop.TrainConfig`,
  :func:`~snndeploy.train.loop.evaluate`, and :class:`~snndeploy.train.loop.Callback`, through which a pruning
  method plugs in (hooks after backward, after the optimizer step and at epoch end; see the loop's docstring).
* ``snndeploy.models.checkpoint``: checkpoint dicts (spec, state dict, optimizer, epoch, RNG), ``weights_only`` loading.
* ``snndeploy.train.distributed``: DistributedDataParallel under ``torchrun`` (no-ops otherwise).
* ``snndeploy.train.run``: ``run_training(spec, TrainJob)`` and ``run_evaluation(model, EvalJob)``, the library calls
  behind ``snndeploy train`` / ``snndeploy evaluate`` (``snndeploy.train.cli``) and the pipeline.
"""
