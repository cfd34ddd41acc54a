"""Distributed set-up in one place: reads torchrun or SLURM variables, starts
``torch.distributed`` and says who is who; and which images a task of a job array
does (:func:`select_shard`, the rule of every ``--shard I/N``).

Launchers and what they set
---------------------------
* ``torchrun --nproc-per-node G ...``: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``MASTER_ADDR``, ``MASTER_PORT``.
* ``srun`` (``slurm/run-model.sbatch``): ``SLURM_PROCID``, ``SLURM_NTASKS``,
  ``SLURM_LOCALID``, ``SLURM_JOB_NODELIST``; the script exports ``MASTER_ADDR`` and
  ``MASTER_PORT``; when they are missing the first host of the node list and a port
  derived from the job id are used.
* neither: one process.

The backend is NCCL when CUDA is used, Gloo otherwise (CPU smoke runs, tests).
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from ..errors import InputError

__all__ = ["DistInfo", "read_env", "init", "cleanup", "is_main", "barrier", "all_reduce_mean", "select_shard"]

log = logging.getLogger(__name__)

#: MASTER_PORT used under SLURM when none is exported: base + job id modulo span.
_SLURM_PORT_BASE = 10000  # below Linux's ephemeral range (32768+), as slurm/run-model.sbatch
_SLURM_PORT_SPAN = 20000


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    launcher: str = "none"  # "torchrun", "slurm" or "none"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _first_slurm_host(nodelist: str) -> str:
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True, timeout=30
        )
        return out.stdout.split()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return nodelist.split(",")[0].split("[")[0]


def read_env(env: Mapping[str, str] | None = None) -> DistInfo:
    """Read the launcher's variables.

    Examples
    --------
    >>> read_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "n1", "MASTER_PORT": "1234"})
    DistInfo(rank=3, world_size=8, local_rank=1, master_addr='n1', master_port=1234, launcher='torchrun')
    >>> read_env({"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "77", "MASTER_ADDR": "n1"})
    DistInfo(rank=1, world_size=2, local_rank=1, master_addr='n1', master_port=10077, launcher='slurm')
    >>> read_env({})
    DistInfo(rank=0, world_size=1, local_rank=0, master_addr='127.0.0.1', master_port=29500, launcher='none')
    """
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistInfo(
            rank=int(env["RANK"]),
            world_size=int(env["WORLD_SIZE"]),
            local_rank=int(env.get("LOCAL_RANK", 0)),
            master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
            master_port=int(env.get("MASTER_PORT", 29500)),
            launcher="torchrun",
        )
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        addr = env.get("MASTER_ADDR") or _first_slurm_host(env.get("SLURM_JOB_NODELIST", "127.0.0.1"))
        port = env.get("MASTER_PORT") or _SLURM_PORT_BASE + int(env.get("SLURM_JOB_ID", "0")) % _SLURM_PORT_SPAN
        return DistInfo(
            rank=int(env["SLURM_PROCID"]),
            world_size=int(env["SLURM_NTASKS"]),
            local_rank=int(env.get("SLURM_LOCALID", 0)),
            master_addr=addr,
            master_port=int(port),
            launcher="slurm",
        )
    return DistInfo()


def init(device: str = "cpu", env: Mapping[str, str] | None = None) -> tuple[DistInfo, torch.device]:
    """Start ``torch.distributed`` when the launcher asked for several processes.

    Parameters
    ----------
    device : str
        ``"cuda"`` or ``"cpu"``; with CUDA each process takes GPU ``local_rank``.

    Returns
    -------
    info : DistInfo
    device : torch.device
        The device this process computes on.
    """
    info = read_env(env)
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(
                "--device cuda: no CUDA device is visible to this process; use --device cpu or run on a GPU node"
            )
        torch.cuda.set_device(info.local_rank % torch.cuda.device_count())
        dev = torch.device("cuda", info.local_rank % torch.cuda.device_count())
    else:
        dev = torch.device("cpu")
    if info.distributed and not torch_dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch_dist.init_process_group(
            backend=backend,
            init_method=f"tcp://{info.master_addr}:{info.master_port}",
            rank=info.rank,
            world_size=info.world_size,
        )
        log.info(
            "distributed: rank %d of %d (local %d) via %s, backend %s, master %s:%d",
            info.rank,
            info.world_size,
            info.local_rank,
            info.launcher,
            backend,
            info.master_addr,
            info.master_port,
        )
    return info, dev


def cleanup() -> None:
    """Leave the process group, if any."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def is_main() -> bool:
    """True on rank 0 (or when not distributed)."""
    return not (torch_dist.is_available() and torch_dist.is_initialized()) or torch_dist.get_rank() == 0


def barrier() -> None:
    """Wait for all ranks (no-op when not distributed)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` over ranks (``value`` itself when not distributed)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        value = value.detach().clone()
        torch_dist.all_reduce(value)
        value /= torch_dist.get_world_size()
    return value


def select_shard(ids: Sequence[str], index: int, count: int) -> list[str]:
    """Every ``count``-th ID of the sorted list, starting at ``index``: the images of task
    ``index`` of ``count`` (``--shard I/N`` of every per-image stage). The shards of one
    list are disjoint and together hold every ID once, whatever the order given.

    >>> select_shard(["c", "a", "b", "d", "e"], 1, 2)
    ['b', 'd']
    """
    if not 0 <= index < count:
        raise InputError(f"shard: expected 0 <= I < N, got {index}/{count}", param="shard")
    return sorted(ids)[index::count]
