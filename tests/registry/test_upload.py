"""The remote-register archive: packed by the client, unpacked by the server, nothing else."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from pointsman.errors import BadRequest, InvalidArtifact
from pointsman.registry import Submission
from pointsman.registry.artifacts import sha256_of
from pointsman.registry.upload import pack, unpack


def model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 10)
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"left out")
    return folder


def test_a_folder_and_its_training_data_come_out_as_they_went_in(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    sub = Submission("m", folder, training_data=data, target="b", params={"C": "1"},
                     metrics={"auc": 0.9}, note="n", trusted_types=("x.Y",))  # fmt: skip
    archive = tmp_path / "upload.tar"
    sha = pack(sub, archive)
    assert sha == sha256_of(folder)
    got, declared = unpack(archive, tmp_path / "out", "m", "ci (for ann)")
    assert declared == sha == sha256_of(got.path)
    assert got.path.name == "model" and not (got.path / "__pycache__").exists()
    assert got.training_data is not None and got.training_data.read_text() == "a,b\n1,2\n"
    assert (got.target, got.params, got.metrics, got.note) == ("b", {"C": "1"}, {"auc": 0.9}, "n")
    assert got.trusted_types == ("x.Y",) and got.user == "ci (for ann)"
    assert set(got.client_lineage) == {"git"}


def test_the_client_refuses_links(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    (folder / "link").symlink_to(folder / "MLmodel")
    with pytest.raises(InvalidArtifact, match="symbolic link"):
        pack(Submission("m", folder), tmp_path / "upload.tar")


def archive(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    path = tmp_path / "hand-made.tar"
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def file_member(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def link_member(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


META = b'{"artifact_sha256": "' + b"0" * 64 + b'"}'


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([(file_member("artifact/m.bin"), b"x")], "no submission.json"),
        ([(file_member("submission.json"), META)], "one entry under artifact/, found 0"),
        (
            [(file_member("submission.json"), META), (file_member("artifact/a"), b"1"),
             (file_member("artifact/b"), b"2")],
            "one entry under artifact/, found 2",
        ),
        (
            [(file_member("submission.json"), META), (file_member("artifact/a"), b"1"),
             (link_member("training/t.csv", "/etc/passwd"), b"")],
            "not a file or a folder",
        ),
        (
            [(file_member("submission.json"), META), (file_member("../escape"), b"1")],
            "not a readable tar archive",
        ),
        (
            [(file_member("submission.json"), b'{"artifact_sha256": "x", "user": "root"}'),
             (file_member("artifact/a"), b"1")],
            "user: Extra inputs are not permitted",
        ),
    ],
)  # fmt: skip
def test_malformed_archives_are_refused_with_what_is_wrong(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]], message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        unpack(archive(tmp_path, members), tmp_path / "out", "m", "u")
    assert not (tmp_path / "escape").exists()
