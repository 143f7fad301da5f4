import numpy as np
import pytest

from pipeline import expr
from pipeline.errors import InputError

NUMPY = {name: getattr(np, {"abs": "absolute"}.get(name, name)) for name in expr.FUNCTIONS}


def evaluate(text, **values):
    return expr.parse(text, values)(NUMPY, values)


def test_arithmetic_and_functions_match_numpy():
    rng = np.random.default_rng()
    a, b = rng.random(20) + 0.1, rng.random(20) + 0.1
    got = evaluate("sqrt(a) * b ** 2 - a // b + a % b + log1p(a) / -b", a=a, b=b)
    np.testing.assert_allclose(got, np.sqrt(a) * b**2 - a // b + a % b + np.log1p(a) / -b)
    np.testing.assert_allclose(evaluate("where(a > b, a, b)", a=a, b=b), np.maximum(a, b))
    np.testing.assert_allclose(evaluate("clip(a, 0.3, 0.6)", a=a), np.clip(a, 0.3, 0.6))
    np.testing.assert_allclose(evaluate("round(a, 2)", a=a), np.round(a, 2))


def test_logic_operators_and_chained_comparison():
    a = np.arange(10)
    np.testing.assert_array_equal(evaluate("(a > 2) & ~(a == 5) | (a < 1)", a=a),
                                  ((a > 2) & ~(a == 5)) | (a < 1))
    np.testing.assert_array_equal(evaluate("2 < a <= 6", a=a), (a > 2) & (a <= 6))


def test_names_used_are_recorded():
    assert expr.parse("a + 2 * c", ["a", "b", "c"]).names == {"a", "c"}


@pytest.mark.parametrize("text, fragment", [
    ("a.__class__", "attribute access '.__class__'"),
    ("a.real", "attribute access '.real'"),
    ("__import__('os')", "name '__import__'"),
    ("a[0]", "subscripts"),
    ("lambda: 1", "'lambda'"),
    ("[x for x in a]", "comprehensions"),
    ("open('f')", "unknown function 'open'"),
    ("eval('1')", "unknown function 'eval'"),
    ("a and b", "'and'"),
    ("not a", "'not'"),
    ("a ^ b", "operator '^'"),
    ("a in b", "comparison 'in'"),
    ("sqrt", "must be called"),
    ("c + 1", "unknown name 'c'"),
    ("sqrt(a, b)", "takes 1 arguments, got 2"),
    ("clip(a, lo=1, hi=2)", "keyword arguments"),
    ("a +", "syntax error"),
    ("", "non-empty"),
    ("(1).__class__.__bases__", "attribute access"),
    ("{'a': 1}", "'Dict' expressions"),
])
def test_escapes_and_mistakes_are_clear_errors(text, fragment):
    with pytest.raises(InputError) as e:
        expr.parse(text, ["a", "b"])
    assert fragment in e.value.what
    assert e.value.where == "expr"


def test_expression_is_never_evaluated_by_python_eval(monkeypatch):
    import builtins

    def no_eval(*a, **k):
        raise AssertionError("eval called")

    monkeypatch.setattr(builtins, "eval", no_eval)
    assert evaluate("a + 1", a=np.ones(2)).tolist() == [2.0, 2.0]
