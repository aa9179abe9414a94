"""Runners: the processes that run model versions, apart from the HTTP workers.

spec (limits and placement), placement (specs in pointsman.toml and the store), wire (the
protocol), process (a runner), client (the HTTP worker's side), supervisor (start, watch,
restart, stop), session (runners for one command), directory (sockets and state).
"""

from pointsman.runners.client import RunnerFault, RunnerPool
from pointsman.runners.directory import RunDir
from pointsman.runners.placement import RunnerBook
from pointsman.runners.spec import RunnerSpec

__all__ = ["RunDir", "RunnerBook", "RunnerFault", "RunnerPool", "RunnerSpec"]
