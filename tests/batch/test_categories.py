"""Text a pipeline only encodes goes to it as pandas Categoricals: the same answers, row for row."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from pointsman.batch import JobSpec, create_job, run_job
from pointsman.batch.categories import categorical_inputs
from pointsman.batch.frames import check_chunk
from pointsman.batch.run import setup_of, version_for
from pointsman.batch.sources import open_source, read_chunks
from pointsman.demo.churn import CATEGORICAL, NUMERIC, TARGET
from pointsman.project import Project
from pointsman.runtimes.sklearn import SklearnRuntime
from tests.batch.test_executors import churn_table, register_churn


def test_the_churn_pipelines_take_their_text_as_categoricals(
    churn_files: list[tuple[Path, Path]],
) -> None:
    for model, _ in churn_files:
        runtime = SklearnRuntime(joblib.load(model), "sklearn_joblib")
        assert categorical_inputs(runtime, CATEGORICAL) == set(CATEGORICAL)


def lengths(frame: pd.DataFrame) -> np.ndarray:
    return frame.apply(lambda column: column.str.len()).to_numpy()


def test_text_anything_but_an_encoder_reads_is_decoded(
    churn_files: list[tuple[Path, Path]],
) -> None:
    data = pd.read_csv(churn_files[0][1])
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "contract"]),
            ("len", FunctionTransformer(lengths), ["plan"]),  # reads the text itself
        ],
        remainder="drop",  # region: dropped, so never read
    )
    model = Pipeline([("prep", prep), ("clf", LogisticRegression())])
    model.fit(data.drop(columns=[TARGET]), data[TARGET])
    runtime = SklearnRuntime(model, "sklearn_joblib")
    assert categorical_inputs(runtime, CATEGORICAL) == {"contract", "region"}
    bare = LogisticRegression().fit(data[NUMERIC], data[TARGET])  # no ColumnTransformer
    assert categorical_inputs(SklearnRuntime(bare, "sklearn_joblib"), CATEGORICAL) == set()
    assert categorical_inputs(None, CATEGORICAL) == set()


def test_categoricals_give_the_output_and_rejects_of_decoded_text_row_for_row(
    project: Project, churn_files: list[tuple[Path, Path]], tmp_path: Path
) -> None:
    register_churn(project, churn_files)
    frame = churn_table(5000)  # row 5: a near miss, flagged
    frame.loc[7, "region"] = "Atlantis"  # unknown category, flagged
    frame.loc[3000, "contract"] = None  # refused; that chunk's contract is decoded
    frame.to_parquet(tmp_path / "in.parquet")
    spec = JobSpec(
        str(tmp_path / "in.parquet"),
        str(tmp_path / "out.parquet"),
        str(tmp_path / "rejects.parquet"),
        chunk_rows=2500,
        workers=1,
    )
    job = create_job(project, "churn", None, spec, "test")
    version = version_for(project, "churn", None)
    source = open_source(spec.input)
    scorer = setup_of(project, job, version, source).build()
    assert scorer.categorical == set(CATEGORICAL)
    columns = version.signature.names
    for chunk, table in enumerate(read_chunks(source, columns, 2500, tuple(CATEGORICAL))):
        checked = check_chunk(version.signature, table, False, True, scorer.categorical)
        kinds = {n: isinstance(c, pd.Categorical) for n, c in checked.frame.columns.items()}
        assert kinds == {n: n in CATEGORICAL and (chunk, n) != (1, "contract") for n in columns}
        as_categories = scorer.score(chunk, chunk * 2500, table)
        scorer.categorical = frozenset()
        as_text = scorer.score(chunk, chunk * 2500, table)
        scorer.categorical = frozenset(CATEGORICAL)
        assert as_categories.output.equals(as_text.output)
        assert as_categories.rejects.equals(as_text.rejects)
        assert as_categories.result.rows == as_text.result.rows == 2500
        counts = (as_categories.result.rejected, as_categories.result.flagged)
        assert counts == (as_text.result.rejected, as_text.result.flagged)
    assert run_job(project, job.id).state == "succeeded"
    out = pd.read_parquet(tmp_path / "out.parquet")
    model = joblib.load(churn_files[0][0])
    # Decoded text, chunk by chunk as the job calls the model: the same answers, exactly.
    answered = frame.drop(index=[3000])
    chunks = [answered[answered.index < 2500], answered[answered.index >= 2500]]
    expected = np.vstack([model.predict_proba(c) for c in chunks])
    assert np.array_equal(out[[c for c in out.columns if c.startswith("p_")]], expected)
    assert out.loc[out["row"].isin([5, 7]), "status"].tolist() == ["flagged", "flagged"]
    assert pd.read_parquet(tmp_path / "rejects.parquet")["row"].tolist() == [3000]


def test_a_dictionary_that_repeats_a_value_is_decoded(
    project: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    register_churn(project, churn_files)
    version = version_for(project, "churn", None)
    plain = pa.Table.from_pandas(churn_table(10), preserve_index=False)
    plan = plain.column("plan").combine_chunks().dictionary_encode()
    doubled = pa.DictionaryArray.from_arrays(  # "basic" twice in the dictionary
        plan.indices, pa.concat_arrays([plan.dictionary, pa.array(["basic"], plan.dictionary.type)])
    )
    table = plain.set_column(plain.schema.get_field_index("plan"), "plan", doubled)
    checked = check_chunk(version.signature, table, False, True, frozenset({"plan"}))
    assert not isinstance(checked.frame.columns["plan"], pd.Categorical)
    assert list(checked.frame.columns["plan"]) == plain.column("plan").to_pylist()
