"""A job started for a server: in a process of its own, never in an HTTP worker."""

from __future__ import annotations

import subprocess
import sys

from pointsman.batch.run import job_folder
from pointsman.project import Project

# Jobs this process started: kept to be reaped (polled) once they end, not left as zombies.
_launched: list[subprocess.Popen[bytes]] = []


def start_in_background(project: Project, job_id: str) -> int:
    """Run the queued job as `pointsman jobs resume ID --if-queued` in a new session; its pid.

    The process outlives the request (and the server, should it stop): the job's record
    says how it goes, and its output goes to `PROJECT/jobs/ID/job.log`.
    """
    folder = job_folder(project, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pointsman",
        "--project",
        str(project.settings.project_path()),
        "jobs",
        "resume",
        job_id,
        "--if-queued",
    ]
    with (folder / "job.log").open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _launched[:] = [p for p in _launched if p.poll() is None]
    _launched.append(process)
    return process.pid
