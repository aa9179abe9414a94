"""`pointsman batch` from an S3 prefix to an S3 object, on the loopback S3 server (moto)."""

from __future__ import annotations

import io
from pathlib import Path

import boto3
import pandas as pd

from tests.batch.test_batch_cli import ROWS, batch, table_with_faults


def test_an_s3_prefix_is_scored_into_an_s3_object_as_a_local_file_is(
    churn_project: list[str], s3_bucket: str, tmp_path: Path
) -> None:
    frame = table_with_faults()
    s3 = boto3.client("s3")
    for i, start in enumerate(range(0, ROWS, 500)):
        body = io.BytesIO()
        frame.iloc[start : start + 500].to_parquet(body)
        s3.put_object(Bucket=s3_bucket, Key=f"in/part-{i}.parquet", Body=body.getvalue())
    s3.put_object(Bucket=s3_bucket, Key="in/README.txt.bak", Body=b"not data")  # skipped
    frame.to_parquet(tmp_path / "in.parquet")
    batch(churn_project, str(tmp_path / "in.parquet"), "-o", str(tmp_path / "local.parquet"))
    shown = batch(churn_project, f"s3://{s3_bucket}/in/", "-o", f"s3://{s3_bucket}/out/s.parquet")
    assert f"rows {ROWS}/{ROWS}: 3 rejected" in shown

    def read(key: str) -> pd.DataFrame:
        body = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
        return pd.read_parquet(io.BytesIO(body)).drop(columns=["job_id"])

    local = pd.read_parquet(tmp_path / "local.parquet").drop(columns=["job_id"])
    pd.testing.assert_frame_equal(read("out/s.parquet"), local)
    assert read("out/s.rejects.parquet")["row"].tolist() == [3, 700, 1100]
