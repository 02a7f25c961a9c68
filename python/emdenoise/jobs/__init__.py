"""Training jobs (Noise2Atom on the user's series, seed 004) that outlive their clients.

:mod:`~emdenoise.jobs.store` keeps each job in a folder, :mod:`~emdenoise.jobs.manager`
starts at most N worker processes and follows them (no torch in this process), and
:mod:`~emdenoise.jobs.worker` is the worker (torch, ``[train]`` extra).
"""

from emdenoise.jobs.manager import TORCH_HINT, TrainingJobs
from emdenoise.jobs.store import TERMINAL, Job, JobStore, jobs_dir

__all__ = ["TERMINAL", "TORCH_HINT", "Job", "JobStore", "TrainingJobs", "jobs_dir"]
