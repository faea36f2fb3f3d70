import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphsurgeon_cg import InputError, PassSpec, build_pipeline, format_pipeline, parse_pipeline

EXAMPLE = "fold-constants,reflect2slice,resize-nearest(nearest_mode=round_prefer_ceil),static-batch(batch=1)"


def test_issue_example_parses_and_round_trips():
    specs = parse_pipeline(EXAMPLE)
    assert [s.name for s in specs] == ["fold-constants", "reflect2slice", "resize-nearest", "static-batch"]
    assert specs[2].options == (("nearest_mode", "round_prefer_ceil"),)
    assert format_pipeline(specs) == EXAMPLE
    assert parse_pipeline(format_pipeline(specs)) == specs


def test_whitespace_and_lists():
    specs = parse_pipeline(" fp16out( outputs = [a, b] ) , opset(version=13)")
    assert specs == [PassSpec("fp16out", (("outputs", ("a", "b")),)), PassSpec("opset", (("version", "13"),))]
    assert format_pipeline(specs) == "fp16out(outputs=[a,b]),opset(version=13)"


def test_a_list_without_brackets_runs_to_the_next_key():
    specs = parse_pipeline("static-shape(shapes=x:1,3,64,64),p(a=1,2,b=3,c=4,5)")
    assert specs == [PassSpec("static-shape", (("shapes", ("x:1", "3", "64", "64")),)),
                     PassSpec("p", (("a", ("1", "2")), ("b", "3"), ("c", ("4", "5"))))]
    assert parse_pipeline(format_pipeline(specs)) == specs
    with pytest.raises(InputError, match="expected a list item"):
        parse_pipeline("p(a=1,)")


token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1, max_size=8)
value = st.one_of(token, st.lists(token, min_size=1, max_size=3).map(tuple))
spec = st.builds(PassSpec, token, st.lists(st.tuples(token, value), max_size=3).map(tuple))


@given(st.lists(spec, min_size=1, max_size=4))
def test_print_parse_round_trip(specs):
    text = format_pipeline(specs)
    assert parse_pipeline(text) == specs
    assert format_pipeline(parse_pipeline(text)) == text


def test_built_passes_print_their_canonical_pipeline():
    passes = build_pipeline("static-batch(batch=4),resize-nearest,fp16out(outputs=[maps])")
    assert ",".join(map(str, passes)) == "static-batch(batch=4),resize-nearest,fp16out(outputs=[maps])"
    assert passes[0].batch == 4
    assert passes[1].nearest_mode == "round_prefer_ceil"
    assert passes[2].outputs == ("maps",)  # list options are typed tuples


@pytest.mark.parametrize("text, message", [
    ("reflect2slise", "did you mean 'reflect2slice'?"),
    ("static-batch(size=2)", "unknown option 'size' (valid options: batch)"),
    ("static-batch(batch=two)", "option 'batch' expects an integer, got 'two'"),
    ("resize-nearest(nearest_mode=up)", "must be one of round_prefer_ceil"),
    ("static-batch(batch=1,batch=2)", "given twice"),
    ("fold-constants,,reflect2slice", "expected a pass name"),
    ("opset(version=13", "expected ')'"),
    ("", "empty pipeline"),
])
def test_errors_are_clear(text, message):
    with pytest.raises(InputError, match=None) as info:
        build_pipeline(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
