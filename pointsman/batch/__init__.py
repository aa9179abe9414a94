"""Batch scoring jobs: files and tables in, predictions out, with progress and resume."""

from pointsman.batch.jobs import Job, JobBook, JobSpec
from pointsman.batch.run import create_job, run_job

__all__ = ["Job", "JobBook", "JobSpec", "create_job", "run_job"]
