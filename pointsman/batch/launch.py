"""A job started for a server: in a process of its own, never in an HTTP worker."""

from __future__ import annotations

import subprocess
import sys
import threading

from pointsman.batch.run import job_folder
from pointsman.project import Project


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
    # Reaped as soon as it ends, not left a zombie until the next launch (nor a Popen that
    # was never polled, which warns when collected at exit).
    threading.Thread(target=process.wait, name=f"pointsman-job-{job_id}", daemon=True).start()
    return process.pid
