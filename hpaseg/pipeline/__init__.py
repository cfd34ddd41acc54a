"""End-to-end work on top of the library: the one predict loop over a folder, the
classifier study's grid, and the demo.

Modules: :mod:`~hpaseg.pipeline.predict`, :mod:`~hpaseg.pipeline.ablation`,
:mod:`~hpaseg.pipeline.demo`.
"""
