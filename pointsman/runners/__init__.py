"""Runners: the processes that run model versions, apart from the HTTP workers.

spec (limits and placement), placement (specs in pointsman.toml and the store), wire (the
protocol), process (a runner), client (the HTTP worker's side), supervisor (start, watch,
restart, stop), session (runners for one command), directory (sockets and state).
"""

# The client (RunnerPool, RunnerFault) is imported from pointsman.runners.client, not from here:
# it loads the wire protocol and numpy, which commands that only read the store do without.
from pointsman.runners.directory import RunDir
from pointsman.runners.placement import RunnerBook
from pointsman.runners.spec import RunnerSpec

__all__ = ["RunDir", "RunnerBook", "RunnerSpec"]
