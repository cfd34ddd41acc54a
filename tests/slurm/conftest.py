"""The ``slurm`` fixture of the SLURM tests: a private one-node cluster per test module
(:mod:`slurm_cluster`), started on first use and stopped by PID after the module; the
tests skip with the reason when the Debian slurm-wlm/munge packages are missing."""

from __future__ import annotations

import pytest

from .slurm_cluster import SlurmCluster, missing_slurm, start_cluster


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> SlurmCluster:
    """A private one-node SLURM cluster for this module; stopped (by PID) afterwards."""
    reason = missing_slurm()
    if reason:
        pytest.skip(reason)
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    yield cluster
    cluster.stop()
