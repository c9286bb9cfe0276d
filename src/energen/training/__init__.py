"""Training: the loop (:func:`energen.training.loop.train`), its checkpoints (export and resume state), the EMA
and the rank helpers. Nothing is imported here, so that loading a checkpoint does not load the loop."""
