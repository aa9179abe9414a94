"""Which text inputs a scikit-learn pipeline only one-hot or ordinal encodes.

A batch job reads a Parquet input's text as dictionaries: a few distinct strings and an
index per row. Decoded for the model, each row becomes a string object of its own, which the
encoder then hashes. Those inputs can go to the model as a pandas Categorical over the
dictionary's strings instead: the encoder turns a Categorical back into the same values
(`numpy.asarray`), but as the same few string objects, whose hashes Python keeps. The
answers are the same; the pipeline sees another dtype on the way in, so this is done only
where nothing but those two encoders reads the column, and their fitted categories are text.
"""

from __future__ import annotations

from typing import Any

from pointsman.runtimes import Runtime
from pointsman.runtimes.sklearn import SklearnRuntime


def categorical_inputs(runtime: Runtime | None, text: list[str]) -> frozenset[str]:
    """The inputs of `text` the runtime's model may be given as pandas Categoricals: those a
    fitted ColumnTransformer (the model's first step) hands only to a OneHotEncoder or an
    OrdinalEncoder fitted on text, or drops. Anything else, or anything not understood: none."""
    if not isinstance(runtime, SklearnRuntime) or not runtime.uses_frame or not text:
        return frozenset()
    try:
        return frozenset(_encoded_only(_first_step(runtime.estimator), text))
    except Exception:  # an estimator of a shape not foreseen: the decoded text, as always
        return frozenset()


def _first_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return _first_step(steps[0][1]) if steps else estimator


def _encoded_only(columns: Any, text: list[str]) -> list[str]:
    from sklearn.compose import ColumnTransformer  # loaded already: the model is sklearn's
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    if type(columns) is not ColumnTransformer or not hasattr(columns, "transformers_"):
        return []
    names = [str(n) for n in columns.feature_names_in_]
    # Each input's readers: (transformer, the input's place among that transformer's columns).
    readers: dict[str, list[tuple[Any, int]]] = {name: [] for name in names}
    indices: dict[str, list[int]] = columns._transformer_to_input_indices
    fitted = {name: transformer for name, transformer, _ in columns.transformers_}
    fitted.setdefault("remainder", columns.remainder)
    for name, taken in indices.items():
        for place, index in enumerate(taken):
            readers[names[index]].append((fitted[name], place))
    safe = []
    # Exact classes, not subclasses: these two read a column through `check_array` (its
    # numpy values, whatever its dtype) and nothing else; a subclass may read it itself.
    for name in text:
        found = readers.get(name)
        if not found:
            continue
        if all(
            t == "drop"
            or (type(t) in (OneHotEncoder, OrdinalEncoder) and _text_categories(t, place))
            for t, place in found
        ):
            safe.append(name)
    return safe


def _text_categories(encoder: Any, place: int) -> bool:
    """Whether the encoder's fitted categories of its column `place` are text (objects)."""
    categories = encoder.categories_[place]
    return bool(categories.dtype.kind == "O" and all(isinstance(c, str) for c in categories))
