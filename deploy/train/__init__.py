"""SLAYER training: loop, checkpoints, resume, evaluation, DistributedDataParallel."""
