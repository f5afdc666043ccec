"""The data-parallel library on MPI: the communicator, DataParallel, ZeRO-1, samplers and checkpoints."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .comm import Comm, init
from .data_parallel import DataParallel
from .digest import state_digest
from .digest_log import log_digest
from .sampler import DistributedSampler, GlobalBatches
from .stop import StopSignal
from .watchdog import progress
from .zero import ZeroOptimizer

__all__ = ["init", "Comm", "DataParallel", "DistributedSampler", "GlobalBatches", "save_checkpoint",
           "load_checkpoint", "CheckpointError", "ZeroOptimizer", "progress",
           "state_digest", "log_digest", "StopSignal"]
