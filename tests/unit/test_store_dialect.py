"""The COPY path's JSON cells: the float fast path reads back exactly as `json.dumps`."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from coordinator.store.dialect import as_json_text

finite = st.floats(allow_nan=False, allow_infinity=False)
anything = st.lists(finite | st.integers(-5, 5) | st.none() | st.text(max_size=3), max_size=6)


@given(st.lists(finite, max_size=64) | st.tuples(finite, finite))
def test_float_vectors_read_back_exactly(vector):
    assert json.loads(as_json_text(vector)) == list(vector)


@given(anything | st.dictionaries(st.text(max_size=3), finite, max_size=3))
def test_anything_else_is_what_json_dumps_writes(value):
    assert json.loads(as_json_text(value)) == json.loads(json.dumps(value))
