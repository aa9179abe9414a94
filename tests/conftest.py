"""Shared fixtures: real models, real stores (SQLite file, PostgreSQL on loopback), real servers."""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
import redis
import sqlalchemy as sa
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from pointsman.auth import KeyBook
from pointsman.demo.churn import TARGET, make_data, train_versions
from pointsman.project import Project, init_project, open_project
from pointsman.registry import Submission
from pointsman.settings import SETTINGS_FILE, load_settings
from pointsman.store.engine import connect, upgrade_to_head

PG_ADMIN_URL = os.environ.get(
    "POINTSMAN_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("POINTSMAN_TEST_REDIS", "redis://127.0.0.1:6379/0")
IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def must_run_everything() -> bool:
    """In CI (and scripts/test) a missing service is a failure, not a skip."""
    return bool(os.environ.get("CI") or os.environ.get("POINTSMAN_REQUIRE_ALL"))


def skip_or_fail(reason: str) -> None:
    if must_run_everything():
        pytest.fail(f"{reason} (CI requires it)")
    pytest.skip(reason)


class Dropper:
    """Drops the tests' databases in a thread of its own, one after the other: DROP DATABASE
    waits for a checkpoint (seconds on a busy server), which no test needs to wait for. The
    session waits for the last drop at its end."""

    def __init__(self) -> None:
        self.names: queue.Queue[str] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.failed: list[str] = []

    def drop(self, name: str) -> None:
        self.names.put(name)
        if self.thread is None:
            self.thread = threading.Thread(target=self._drain, name="drop-databases", daemon=True)
            self.thread.start()

    def _drain(self) -> None:
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        while True:
            name = self.names.get()
            try:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except sa.exc.SQLAlchemyError as exc:
                self.failed.append(f"{name}: {exc}")
            finally:
                self.names.task_done()

    def wait(self) -> list[str]:
        """Until every database queued is dropped; the drops that failed."""
        if self.thread is not None:
            self.names.join()
        return self.failed


DROPPER = Dropper()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    failed = DROPPER.wait()
    if failed:  # as a failed drop at a test's teardown did: the run fails
        print(f"\ntest databases left behind: {failed}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def fresh_postgres_database(request: pytest.FixtureRequest, template: str = "") -> str:
    """A new database on the local PostgreSQL (empty, or a copy of `template`), dropped at
    teardown."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"pointsman_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        skip_or_fail(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc.orig}")

    admin.dispose()
    request.addfinalizer(lambda: DROPPER.drop(name))
    return str(sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(False))


@pytest.fixture(scope="session")
def migrated_stores(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """A store of each kind migrated to head once per run, copied for each test: migrating
    costs a test about half a second on PostgreSQL, a copy a tenth of that."""
    sqlite_file = tmp_path_factory.mktemp("template") / "pointsman.db"
    engine = connect(f"sqlite:///{sqlite_file}")
    upgrade_to_head(engine)
    engine.dispose()  # the last connection closed: the WAL is folded into the file
    templates = {"sqlite": str(sqlite_file), "postgresql": ""}
    try:
        url = fresh_postgres_database(request)
    except pytest.skip.Exception:
        return templates  # each PostgreSQL test then skips (or fails) on its own
    engine = connect(url)
    upgrade_to_head(engine)
    engine.dispose()  # CREATE DATABASE ... TEMPLATE needs it unused
    templates["postgresql"] = str(sa.engine.make_url(url).database)
    return templates


Prepare = Callable[[Path, str], None]


@dataclass(frozen=True)
class Template:
    """A prepared project: its folder and the store its settings name."""

    folder: Path
    database_url: str


class ProjectTemplates:
    """Projects prepared once per run, by name and store, and copied for each test: a copy
    costs a test a tenth of a second, preparing it again seconds (registering runs the model
    in a process of its own)."""

    def __init__(
        self,
        session: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory,
        migrated_stores: dict[str, str],
    ) -> None:
        self.session = session
        self.tmp_path_factory = tmp_path_factory
        self.migrated_stores = migrated_stores
        self.prepared: dict[tuple[str, str], Template] = {}

    def copy(
        self, request: pytest.FixtureRequest, name: str, store: str, prepare: Prepare, to: Path
    ) -> Path:
        """A copy of project `name` on `store` in `to/proj` (a SQLite file beside it, unless
        it keeps the default one inside), all of its own: `prepare(folder, database_url)` made
        the template on the first call; `name` stands for that one `prepare`."""
        template = self.prepared.get((name, store))
        if template is None:
            template = self.prepared[(name, store)] = self._prepare(name, store, prepare)
        folder = to / "proj"
        shutil.copytree(template.folder, folder, symlinks=True)
        if not template.database_url:
            return folder  # the store is the SQLite file in the folder
        if template.database_url.startswith("sqlite"):
            shutil.copyfile(sa.engine.make_url(template.database_url).database, to / "pointsman.db")
            url = f"sqlite:///{to / 'pointsman.db'}"
        else:
            url = fresh_postgres_database(
                request, str(sa.engine.make_url(template.database_url).database)
            )
        toml = folder / SETTINGS_FILE
        toml.write_text(toml.read_text().replace(f'"{template.database_url}"', f'"{url}"'))
        if load_settings(folder).database_url != url:
            raise RuntimeError(f"{toml} does not name the copy's store {url}")
        return folder

    def _prepare(self, name: str, store: str, prepare: Prepare) -> Template:
        root = self.tmp_path_factory.mktemp(f"prepared-{name}-{store}")
        if store == "sqlite":
            shutil.copyfile(self.migrated_stores["sqlite"], root / "pointsman.db")
            url = f"sqlite:///{root / 'pointsman.db'}"
        elif self.migrated_stores["postgresql"]:
            url = fresh_postgres_database(self.session, self.migrated_stores["postgresql"])
        else:
            skip_or_fail(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
        prepare(root / "proj", url)
        settings = tomllib.loads((root / "proj" / SETTINGS_FILE).read_text())
        if store == "sqlite" and "database_url" not in settings:
            url = ""  # prepare kept the project's own default store, in its folder
        elif settings.get("database_url") != url:
            raise RuntimeError(f"the template {name} does not keep its store at {url}")
        if store == "sqlite":
            sqlite_file = root / ("pointsman.db" if url else "proj/pointsman.db")
            # Every connection is closed, so the WAL is folded into the file; a copy of the
            # file alone is then the whole store.
            if Path(f"{sqlite_file}-wal").exists():
                raise RuntimeError(f"the template {name} left its SQLite store open")
            # A copy moves the folder: the store must name nothing in it by absolute path.
            if str(root).encode() in sqlite_file.read_bytes():
                raise RuntimeError(f"the store of the template {name} names its folder {root}")
        return Template(root / "proj", url)


@pytest.fixture(scope="session")
def project_templates(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    migrated_stores: dict[str, str],
) -> ProjectTemplates:
    """Prepared projects, for fixtures that copy one into each test (see ProjectTemplates)."""
    return ProjectTemplates(request, tmp_path_factory, migrated_stores)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Each supported store by name, for a fixture that makes the store itself."""
    return str(request.param)


@pytest.fixture(autouse=True)
def logging_left_alone() -> Iterator[None]:
    """What a test configures of pointsman's loggers (a server's log_format, say) is undone,
    so that a later test's caplog still sees their records."""
    logger = logging.getLogger("pointsman")
    kept = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = kept


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the local Redis; its keys are deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        skip_or_fail(f"Redis not reachable at {REDIS_URL}: {exc}")
    prefix = f"pointsman-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_stores: dict[str, str]
) -> str:
    """The store URL, once per supported database, migrated to head."""
    return new_database_url(request, tmp_path, migrated_stores)


def new_database_url(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_stores: dict[str, str]
) -> str:
    """A store of the test's kind (`request.param`) migrated to head, of its own."""
    if request.param == "sqlite":
        shutil.copyfile(migrated_stores["sqlite"], tmp_path / "pointsman.db")
        return f"sqlite:///{tmp_path / 'pointsman.db'}"
    return fresh_postgres_database(request, migrated_stores["postgresql"])


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store URL, once per supported database: for the tests of migrating."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pointsman.db'}"
    return fresh_postgres_database(request)


def init_test_project(folder: Path, database_url: str) -> Project:
    """An empty project in `folder` on the store at `database_url`, set up as tests want it."""
    folder, _ = init_project(folder, database_url)
    # Apps started by the tests wait for their versions' runners, so a test's first request
    # meets a warm version (a server's default is to serve at once; see startup_wait_s).
    with (folder / "pointsman.toml").open("a") as toml:
        toml.write("startup_wait_s = 30\n")
    return open_test_project(folder)


def open_test_project(folder: Path) -> Project:
    """The project in `folder`, opened as tests want it."""
    opened = open_project(load_settings(folder))
    # Compiling to ONNX costs a second per registration (importing skl2onnx): the tests of
    # compiling turn it on (tests/registry/test_compiled.py).
    opened.registry.compile_at_register = False
    return opened


@pytest.fixture
def project(tmp_path: Path, database_url: str) -> Iterator[Project]:
    """An empty project on each store."""
    opened = init_test_project(tmp_path / "project", database_url)
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def iris_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A logistic regression fitted on iris (bundled with scikit-learn), and its data as CSV."""
    folder = tmp_path_factory.mktemp("iris")
    iris = load_iris()
    frame = pd.DataFrame(iris.data, columns=IRIS_COLUMNS)
    model = LogisticRegression(max_iter=500).fit(frame, iris.target)
    frame["species"] = iris.target
    data = folder / "iris.csv"
    frame.to_csv(data, index=False)
    path = folder / "iris.joblib"
    joblib.dump(model, path)
    return path, data


@pytest.fixture(scope="session")
def churn_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Path]]:
    """The demo's two churn versions (model file, training CSV)."""
    trained = train_versions(tmp_path_factory.mktemp("churn"))
    return [(t.path, t.training_data) for t in trained]


def churn_rows(n: int, seed: int = 11) -> list[dict[str, object]]:
    """Rows a churn model accepts."""
    frame = make_data(n, seed).drop(columns=[TARGET])
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def register_iris(project: Project, files: tuple[Path, Path], name: str = "iris") -> int:
    path, data = files
    record, _ = project.registry.register(
        Submission(model=name, path=path, training_data=data, target="species", user="test")
    )
    return record.number


def admin_headers(project: Project, name: str = "tests") -> dict[str, str]:
    """Headers carrying a new admin key of `project` (auth is on, as by default)."""
    key, _ = KeyBook(project.engine).create(name, ["admin"], "test")
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
def debian_tools() -> Path:
    """Debian's kubectl and nginx, unpacked by scripts/debian-tools (the folder they are in)."""
    script = Path(__file__).resolve().parent.parent / "scripts" / "debian-tools"
    done = subprocess.run([str(script)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        skip_or_fail(f"scripts/debian-tools could not unpack kubectl and nginx: {done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`pointsman serve` in a subprocess on 127.0.0.1, polled until its versions are warm."""

    def __init__(
        self,
        project_dir: Path,
        workers: int = 1,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        ca: Path | None = None,
    ):
        """`args` are extra serve options; `ca` makes it HTTPS, verified against that CA."""
        self.port = free_port()
        self.verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
        self.url = f"{'https' if ca else 'http'}://127.0.0.1:{self.port}"
        self.log = project_dir / f"serve-{self.port}.log"
        command = [
            sys.executable, "-m", "pointsman", "--project", str(project_dir), "serve",
            "--port", str(self.port), "--workers", str(workers), *(args or []),
        ]  # fmt: skip
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            command,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Until /readyz answers 200: every routed version has a warm runner."""
        deadline = time.monotonic() + timeout_s
        answer = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                r = httpx.get(self.url + "/readyz", timeout=1, verify=self.verify)
                if r.status_code == 200:
                    return
                answer = r.text
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"server not ready after {timeout_s} s ({answer}):\n{self.log.read_text()}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log_file.close()


class RunnerProcess:
    """`pointsman runner serve` in its own process group, on a free loopback port."""

    def __init__(self, folder: Path, model: str, version: int, secret: str, port: int = 0) -> None:
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = folder / f"runner-{self.port}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pointsman", "--project", str(folder), "runner", "serve",
                 model, str(version), "--listen", self.address],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "POINTSMAN_RUNNER_SECRET": secret},
            )  # fmt: skip

    def wait_listening(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"runner exited early:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"runner not listening after {timeout_s} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL to the whole group: the command and the runner it supervises."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server (the real S3 protocol) on 127.0.0.1 and a free port, for the session."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited early:\n{log.read_text()}")
            try:
                httpx.get(url + "/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty bucket; boto3's own settings (the environment) point at the S3 server."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "pointsman-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "pointsman-test-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    bucket = f"pointsman-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket
