"""What every trainer and predictor shares: checkpoints, metric logs, learning-rate
schedules, seeds, configs, distributed set-up, hardware defaults, RGB -> RGBY stems,
worker process pools.

Modules: :mod:`~hpaseg.runtime.checkpoint`, :mod:`~hpaseg.runtime.logger`,
:mod:`~hpaseg.runtime.schedule`, :mod:`~hpaseg.runtime.seed`, :mod:`~hpaseg.runtime.config`,
:mod:`~hpaseg.runtime.dist`, :mod:`~hpaseg.runtime.hardware`, :mod:`~hpaseg.runtime.stems`,
:mod:`~hpaseg.runtime.pool`.
"""
