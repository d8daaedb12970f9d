"""Misuse raises TypeError or ValueError with a message that says what was wrong."""
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.special

import gpuad
import gpuad.numpy as gnp
import gpuad.sparse

X = gnp.asarray([1.0, 2.0])


def loss(x):
    return gnp.sum(x ** 2)


def double(x):
    return x * 2


def _pullback():
    return gpuad.vjp(double, X)[1]


def _linearized():
    return gpuad.linearize(double, X)[1]


def _assign(x):
    x[0] = 1.0
    return gnp.sum(x)


DIFF_TRANSFORMS = [gpuad.grad, gpuad.value_and_grad, gpuad.jacfwd, gpuad.jacrev, gpuad.jacobian, gpuad.hessian]
NON_FLOAT_INPUTS = {"int_array": np.array([1, 2]), "bool_array": np.array([True, False]), "python_int": 3}


@pytest.mark.parametrize("transform", DIFF_TRANSFORMS, ids=lambda t: t.__name__)
@pytest.mark.parametrize("value", list(NON_FLOAT_INPUTS.values()), ids=list(NON_FLOAT_INPUTS))
def test_non_float_inputs_are_refused(transform, value):
    with pytest.raises(TypeError, match=r"dtype (int|bool).*floating-point.*asarray\(x, dtype=float\)"):
        transform(loss)(value)


# JAX's rules: jacfwd wants real inputs, jacrev and grad real outputs, unless holomorphic=True
COMPLEX_REFUSED = {gpuad.grad: "outputs", gpuad.value_and_grad: "outputs", gpuad.jacrev: "outputs",
                   gpuad.jacfwd: "inputs", gpuad.jacobian: "inputs", gpuad.hessian: "inputs"}


@pytest.mark.parametrize("transform", DIFF_TRANSFORMS, ids=lambda t: t.__name__)
def test_complex_values_need_holomorphic(transform):
    side = COMPLEX_REFUSED[transform]
    with pytest.raises(TypeError, match=f"requires real-valued {side}.*complex128.*pass holomorphic=True"):
        transform(loss)(np.array([1.0 + 2.0j, 3.0]))


@pytest.mark.parametrize("transform", DIFF_TRANSFORMS, ids=lambda t: t.__name__)
def test_holomorphic_needs_complex_values(transform):
    with pytest.raises(TypeError, match="holomorphic=True requires inputs with complex dtype, but got float64"):
        transform(loss, holomorphic=True)(X)


@pytest.mark.parametrize("transform", DIFF_TRANSFORMS + [
    lambda f: lambda x: gpuad.jvp(f, (x,), (x,)), lambda f: lambda x: gpuad.vjp(f, x),
    lambda f: lambda x: gpuad.linearize(f, x), lambda f: gpuad.vmap(f)])
def test_function_returning_a_string(transform):
    with pytest.raises(TypeError, match="must return arrays.*returned a str"):
        transform(lambda x: "not an array")(X)


CASES = {
    "numpy_name_not_in_gpuad": (lambda: gnp.unique, AttributeError, r"gpuad.numpy has no 'unique' yet.*Compose it"),
    # ------------------------------------------------------------ outputs and argnums
    "grad_of_vector_output": (lambda: gpuad.grad(double)(X), TypeError, r"one scalar output.*\(2,\).*jacrev"),
    "grad_of_integer_output": (lambda: gpuad.grad(lambda x: 3)(X), TypeError, "floating-point output.*int"),
    "has_aux_without_pair": (lambda: gpuad.grad(loss, has_aux=True)(X), TypeError, r"has_aux=True.*pair"),
    "argnums_out_of_range": (lambda: gpuad.grad(loss, argnums=1)(X), ValueError, "argnums 1 is out of range"),
    "argnums_string": (lambda: gpuad.jacfwd(loss, argnums="0")(X), TypeError, "argnums must be an int"),
    "argnums_float": (lambda: gpuad.jacrev(loss, argnums=0.5)(X), TypeError, "argnums must be an int"),
    "argnums_empty": (lambda: gpuad.jacrev(loss, argnums=())(X), TypeError, "non-empty tuple"),
    "argnums_repeated": (lambda: gpuad.jacrev(lambda a, b: a * b, argnums=(0, 0))(X, X), ValueError,
                         "same argument twice"),
    "chunk_size_zero": (lambda: gpuad.jacfwd(double, chunk_size=0)(X), ValueError, "chunk_size must be a positive"),
    "chunk_size_float": (lambda: gpuad.jacrev(double, chunk_size=1.5)(X), ValueError, "chunk_size.*1.5"),
    "chunk_size_negative_hessian": (lambda: gpuad.hessian(loss, chunk_size=-2)(X), ValueError,
                                    "chunk_size.*-2"),
    "jacobian_mode": (lambda: gpuad.jacobian(double, mode="sideways"), ValueError, "mode must be.*sideways"),
    "string_input": (lambda: gpuad.grad(loss)("abc"), TypeError, "must be an array or a Python float, got str"),
    # ------------------------------------------------------------ tangents and cotangents
    "jvp_tangent_shape": (lambda: gpuad.jvp(double, (X,), (gnp.ones(3),)), ValueError,
                          r"tangent has shape \(3,\) but its primal has shape \(2,\)"),
    "jvp_tangent_dtype": (lambda: gpuad.jvp(double, (X,), (gnp.ones(2, dtype=np.float32),)), TypeError,
                          "tangent has dtype float32 but its primal has dtype float64"),
    "jvp_tangent_int_dtype": (lambda: gpuad.jvp(double, (X,), (np.array([1, 2]),)), TypeError,
                              "tangent has dtype int64"),
    "jvp_tangent_count": (lambda: gpuad.jvp(double, (X,), (X, X)), ValueError, "1 primals but 2 tangents"),
    "jvp_tangent_structure": (lambda: gpuad.jvp(lambda p: p["a"], ({"a": X},), ({"b": X},)), ValueError,
                              "tangents have structure"),
    "jvp_not_tuples": (lambda: gpuad.jvp(double, X, X), TypeError, "must be tuples"),
    "vjp_cotangent_shape": (lambda: _pullback()(gnp.ones(3)), ValueError,
                            r"cotangent has shape \(3,\) but its primal has shape \(2,\)"),
    "vjp_cotangent_dtype": (lambda: _pullback()(gnp.ones(2, dtype=np.float32)), TypeError,
                            "cotangent has dtype float32 but its primal has dtype float64"),
    "vjp_cotangent_structure": (lambda: _pullback()((gnp.ones(2),)), ValueError, "cotangent has structure"),
    "linearize_tangent_shape": (lambda: _linearized()(gnp.ones(3)), ValueError, r"tangent has shape \(3,\)"),
    "linearize_tangent_dtype": (lambda: _linearized()(gnp.ones(2, dtype=np.float32)), TypeError,
                                "tangent has dtype float32"),
    "linearize_tangent_count": (lambda: _linearized()(X, X), ValueError, "tangents have structure"),
    # ------------------------------------------------------------ vmap axes
    "vmap_in_axes_out_of_range": (lambda: gpuad.vmap(loss, in_axes=2)(gnp.ones((2, 3))), ValueError,
                                  r"in_axes 2 is out of range.*\(2, 3\)"),
    "vmap_negative_in_axes_out_of_range": (lambda: gpuad.vmap(loss, in_axes=-3)(gnp.ones((2, 3))), ValueError,
                                           "in_axes -3 is out of range"),
    "vmap_scalar_argument": (lambda: gpuad.vmap(double)(2.0), ValueError, r"out of range.*shape \(\)"),
    "vmap_different_sizes": (lambda: gpuad.vmap(lambda a, b: a + b)(gnp.ones(2), gnp.ones(3)), ValueError,
                             "same size.*size 2.*size 3"),
    "vmap_in_axes_length": (lambda: gpuad.vmap(lambda a, b: a + b, in_axes=(0,))(X, X), ValueError,
                            "in_axes has 1 entries but the function got 2 arguments"),
    "vmap_nothing_mapped": (lambda: gpuad.vmap(double, in_axes=None)(X), ValueError, "no argument is mapped"),
    "vmap_out_axes_out_of_range": (lambda: gpuad.vmap(double, out_axes=3)(X), ValueError,
                                   "out_axes 3 is out of range"),
    "vmap_out_axes_none_for_batched": (lambda: gpuad.vmap(double, out_axes=None)(X), ValueError,
                                       "out_axes is None.*varies"),
    "vmap_in_axes_structure": (lambda: gpuad.vmap(double, in_axes=({"a": 0},))(X), ValueError,
                               "does not match the structure"),
    "vmap_if_on_batched_value": (lambda: gpuad.vmap(lambda x: x if x > 0 else -x)(X), TypeError,
                                 r"truth value of a batched value.*vmap.*where"),
    # ------------------------------------------------------------ traced values
    "item_assignment": (lambda: gpuad.grad(_assign)(X), TypeError, r"immutable.*x\.at\[idx\]\.set\(v\)"),
    "float_of_traced": (lambda: gpuad.grad(lambda x: float(x[0]))(X), TypeError,
                        r"float\(\).*traced value.*derivative"),
    "int_of_traced": (lambda: gpuad.jacfwd(lambda x: int(x[0]))(X), TypeError, r"int\(\).*traced value"),
    "np_asarray_of_traced": (lambda: gpuad.grad(lambda x: np.asarray(x).sum())(X), TypeError,
                             "cannot be converted to a NumPy array.*gpuad.numpy"),
    "np_array_of_traced": (lambda: gpuad.jacfwd(lambda x: np.array(x))(X), TypeError,
                           "cannot be converted to a NumPy array"),
    "len_of_scalar": (lambda: gpuad.grad(lambda x: len(x))(2.0), TypeError, "len.*0-d"),
    "float_index_array": (lambda: gpuad.grad(lambda x: x[np.array([0.5])].sum())(X), TypeError,
                          "index arrays must be integer or boolean"),
    "batched_index_in_tuple": (lambda: gpuad.vmap(lambda x, i: x[i, 0])(gnp.ones((2, 2, 2)), np.array([0, 1])),
                               TypeError, "batched index works alone.*take_along_axis"),
    "batched_boolean_mask": (lambda: gpuad.vmap(lambda x, m: x[m])(gnp.ones((2, 3)), np.eye(2, 3) > 0),
                             TypeError, "boolean mask would give a shape that depends on values.*where"),
    "numpy_constant_indexed_by_batched": (lambda: gpuad.vmap(lambda i: np.ones((3, 2))[i])(np.array([0, 2])),
                                          TypeError, "batched value cannot become a NumPy array.*gnp.take"),
    "np_asarray_under_jit": (lambda: gpuad.jit(lambda x: np.asarray(x))(X), TypeError,
                             "cannot be converted to a NumPy array: gpuad.jit traces the function without data"),
    "tolist_of_traced": (lambda: gpuad.jacfwd(lambda x: gnp.asarray(x.tolist()))(X), TypeError,
                         r"tolist\(\).*drop its derivative.*list\(x\)"),
    "tolist_under_jit": (lambda: gpuad.jit(lambda x: gnp.asarray(x.tolist()))(X), TypeError, r"tolist\(\).*jit"),
    "item_of_traced": (lambda: gpuad.grad(lambda x: x[0].item())(X), TypeError, r"item\(\)"),
    "scipy_special_ufunc_without_counterpart": (lambda: gpuad.jacfwd(lambda x: scipy.special.zeta(x + 1.0, 1.0))(X),
                                                TypeError, "scipy.special.zeta .*no counterpart of it yet"),
    "scipy_special_ufunc_under_jit": (lambda: gpuad.jit(lambda x: scipy.special.zeta(x + 1.0, 1.0))(X), TypeError,
                                      "scipy.special.zeta"),
    "scipy_logsumexp_of_traced": (lambda: gpuad.grad(lambda x: scipy.special.logsumexp(x))(X), TypeError,
                                  r"scipy.special.logsumexp .*call gpuad.scipy.special.logsumexp instead"),
    "scipy_logsumexp_under_jit": (lambda: gpuad.jit(lambda x: scipy.special.logsumexp(x))(X), TypeError,
                                  r"call gpuad.scipy.special.logsumexp instead"),
    "if_inside_sparse_jacobian": (lambda: gpuad.sparse.jacobian(lambda x: x if x[0] > 0 else -x)(X), TypeError,
                                  r"gpuad.sparse.jacobian \(finding the sparsity pattern.*not an array.*sparsity="),
    "bad_reshape": (lambda: gpuad.grad(lambda x: x.reshape(3).sum())(X), ValueError, "cannot reshape"),
    "bad_matmul": (lambda: gpuad.grad(lambda x: (x @ gnp.ones(3)).sum())(X), ValueError, "do not line up"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_clear_error(name):
    call, error, pattern = CASES[name]
    with pytest.raises(error, match=pattern):
        call()


def test_a_python_if_inside_sparse_jacobian_does_not_speak_of_jit():
    with pytest.raises(TypeError) as refused:
        gpuad.sparse.jacobian(lambda x: x if x[0] > 0 else -x)(X)
    assert "static_argnums" not in str(refused.value) and "gpuad.jit" not in str(refused.value)


def _store(x):
    y = np.zeros(2)
    y[0] = x[0]  # NumPy calls float(x[0])
    return gnp.asarray(y) * x


@pytest.mark.parametrize("transform", [gpuad.jacfwd, gpuad.jit], ids=["jacfwd", "jit"])
def test_storing_a_traced_value_into_a_numpy_array_says_what_to_do(transform):
    """NumPy reports 'setting an array element with a sequence' (a traced value can be indexed);
    its cause, shown with it, is gpuad's message."""
    with pytest.raises(ValueError) as refused:
        transform(_store)(X)
    assert r"y[i] = x" in str(refused.value.__cause__) and "y.at[i].set(x)" in str(refused.value.__cause__)


def test_a_numpy_integer_chunk_size_is_an_int():
    f = lambda x: gnp.sin(x) * x[0]  # noqa: E731
    x = gnp.asarray(np.linspace(0.1, 1.0, 5))
    for transform in (gpuad.jacfwd, gpuad.jacrev, gpuad.hessian):
        np.testing.assert_allclose(transform(f, chunk_size=np.int64(2))(x), transform(f)(x), rtol=1e-15)
    with pytest.raises(ValueError, match="chunk_size"):
        gpuad.jacfwd(f, chunk_size=np.True_)(x)


def _sqrt_sum(x):
    return gnp.sum(gnp.sqrt(x))


@pytest.mark.parametrize("name, call", [
    ("jacfwd", lambda x: gpuad.jacfwd(gnp.sqrt)(x)), ("jacrev", lambda x: gpuad.jacrev(gnp.sqrt)(x)),
    ("grad", lambda x: gpuad.grad(_sqrt_sum)(x)), ("hessian", lambda x: gpuad.hessian(_sqrt_sum)(x)),
    ("vjp pullback", lambda x: gpuad.vjp(gnp.sqrt, x)[1](gnp.ones(2))),
    ("vmap of jacfwd", lambda x: gpuad.vmap(gpuad.jacfwd(gnp.sqrt))(x[None]))])
def test_warnings_of_derivative_rules_point_at_the_users_line(name, call):
    """sqrt's derivative at 0 divides by zero: the RuntimeWarning names the rule and points at the
    line that called the transform, not at gpuad's rule table."""
    x = gnp.asarray(np.array([0.0, 1.0]))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        call(x)
    runtime = [w for w in seen if issubclass(w.category, RuntimeWarning)]
    assert runtime, "no warning for a derivative that divides by zero"
    assert all(w.filename == __file__ for w in runtime), [(w.filename, w.lineno) for w in runtime]
    assert any("divide by zero encountered in gpuad's rule" in str(w.message) for w in runtime)
    users = {line, call.__code__.co_firstlineno, _sqrt_sum.__code__.co_firstlineno + 1}  # the call, or inside f
    assert {w.lineno for w in runtime} <= users


def test_floating_point_settings_of_the_user_are_kept():
    x = gnp.asarray(np.array([0.0, 1.0]))
    with warnings.catch_warnings(record=True) as seen, np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("always")
        gpuad.jacfwd(gnp.sqrt)(x)
    assert not seen
    with np.errstate(divide="raise"), pytest.raises(FloatingPointError):
        gpuad.jacrev(gnp.sqrt)(x)


def test_scipy_special_is_imported_only_when_a_special_function_is_used():
    code = ("import sys, numpy as np, gpuad, gpuad.numpy as gnp\n"
            "x = np.linspace(0.1, 1, 3)\n"
            "gpuad.jacfwd(gnp.sin)(x); gpuad.jacrev(gnp.tanh)(x); gpuad.jit(gpuad.grad(lambda x: gnp.sum(x ** 2)))(x)\n"
            "assert 'scipy.special' not in sys.modules, 'imported by a transform without special functions'\n"
            "import gpuad.scipy.special as gsp\n"
            "assert 'scipy.special' not in sys.modules, 'imported by gpuad.scipy.special itself'\n"
            "gpuad.jacfwd(gsp.erf)(x)\n"
            "assert 'scipy.special' in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
