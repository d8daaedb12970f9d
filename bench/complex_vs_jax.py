"""python -m bench.complex_vs_jax: complex functions and FFT programs against JAX, in complex128.

A held-out set (none of these functions is in the tests' generators): each derivative gpuad
computes is compared with JAX's on the same inputs, directions and cotangents; the relative
difference must be below 1e-12 (issue 27's target). Needs JAX (CPU). Prints one line per check
and exits 1 on a mismatch.
"""
import sys

import numpy as onp


def functions(np, W):
    k2 = onp.arange(5.0) ** 2
    return {
        "holomorphic": lambda z: np.exp(np.sin(z) * z[::-1]) / (2 + np.cos(z)) + (W @ z) ** 2 * np.log(z + 3),
        "non-holomorphic": lambda z: np.abs(z) ** 1.5 * np.conj(z) + np.real(z) * np.angle(z) * 1j + np.imag(z ** 2),
        "real-valued": lambda z: np.sum(np.abs(np.fft.fft(z * np.exp(1j * np.real(z)))) ** 2)
        + np.real(np.linalg.det(W + np.diag(z))),
        "fft program": lambda z: np.fft.ifft2(np.fft.fft2(np.outer(z, z)) * W, norm="ortho").ravel()[:7],
        "spectral residual": lambda x: x - 1e-2 * np.fft.irfft(-k2 * np.fft.rfft(x ** 3), n=8)
        + np.fft.hfft(np.fft.ihfft(x * x), n=8),
        "frequency fit": lambda x: np.fft.rfft(np.sin(x) * x, n=10, norm="forward") * (1 + 2j),
    }


def checks(gpuad, gnp, jax, jnp):
    """(name, gpuad's value, JAX's) for every check."""
    rng = onp.random.default_rng(42)

    def c(*s):
        return (rng.uniform(0.2, 1.2, s) * rng.choice([-1, 1], s)
                + 1j * rng.uniform(0.2, 1.2, s) * rng.choice([-1, 1], s))
    z, v, W, x = c(5), c(5), c(5, 5), rng.normal(size=8)
    G, J = functions(gnp, W), functions(jnp, W)
    yield "holomorphic jacfwd", gpuad.jacfwd(G["holomorphic"], holomorphic=True)(z), \
        jax.jacfwd(J["holomorphic"], holomorphic=True)(z)
    yield "holomorphic jacrev", gpuad.jacrev(G["holomorphic"], holomorphic=True)(z), \
        jax.jacrev(J["holomorphic"], holomorphic=True)(z)
    yield "holomorphic hessian", gpuad.hessian(lambda z: gnp.sum(G["holomorphic"](z)), holomorphic=True)(z), \
        jax.hessian(lambda z: jnp.sum(J["holomorphic"](z)), holomorphic=True)(z)
    for name in ("holomorphic", "non-holomorphic", "fft program"):
        yield f"{name} jvp", gpuad.jvp(G[name], (z,), (v,))[1], jax.jvp(J[name], (z,), (v,))[1]
        u = c(*onp.shape(G[name](z)))
        yield f"{name} vjp", gpuad.vjp(G[name], z)[1](u)[0], jax.vjp(J[name], z)[1](u)[0]
    yield "real-valued grad", gpuad.grad(G["real-valued"])(z), jax.grad(J["real-valued"])(z)
    yield "real-valued jvp of grad", gpuad.jvp(gpuad.grad(G["real-valued"]), (z,), (v,))[1], \
        jax.jvp(jax.grad(J["real-valued"]), (z,), (v,))[1]
    for name in ("spectral residual", "frequency fit"):
        yield f"{name} jacfwd", gpuad.jacfwd(G[name])(x), jax.jacfwd(J[name])(x)
        u = c(*onp.shape(G[name](x))) if name == "frequency fit" else rng.normal(size=8)
        yield f"{name} vjp", gpuad.vjp(G[name], x)[1](u)[0], jax.vjp(J[name], x)[1](u)[0]
    yield "spectral residual hessian", gpuad.hessian(lambda x: gnp.sum(G["spectral residual"](x) ** 2))(x), \
        jax.hessian(lambda x: jnp.sum(J["spectral residual"](x) ** 2))(x)
    yield "jit(jacfwd) fft program", gpuad.jit(gpuad.jacfwd(G["fft program"], holomorphic=True))(z), \
        jax.jit(jax.jacfwd(J["fft program"], holomorphic=True))(z)
    yield "vmap of jvp", gpuad.vmap(lambda a, b: gpuad.jvp(G["non-holomorphic"], (a,), (b,))[1])(W, W.T), \
        jax.vmap(lambda a, b: jax.jvp(J["non-holomorphic"], (a,), (b,))[1])(W, W.T)
    yield "slogdet sign vjp", gpuad.vjp(lambda a: gnp.linalg.slogdet(a)[0], W)[1](onp.complex128(1 + 0.5j))[0], \
        jax.vjp(lambda a: jnp.linalg.slogdet(a)[0], W)[1](onp.complex128(1 + 0.5j))[0]
    h = W @ W.conj().T + onp.eye(5)
    yield "cholesky jvp", gpuad.jvp(gnp.linalg.cholesky, (h,), (W,))[1], jax.jvp(jnp.linalg.cholesky, (h,), (W,))[1]
    yield "cholesky vjp", gpuad.vjp(gnp.linalg.cholesky, h)[1](W.T)[0], jax.vjp(jnp.linalg.cholesky, h)[1](W.T)[0]
    def sine(np):  # a matrix function: blind to the eigenvectors' phases
        return lambda a: (lambda w, v: (v * np.sin(w)) @ v.conj().T)(*np.linalg.eigh(a))
    yield "eigh matrix function jvp", gpuad.jvp(sine(gnp), (h,), (W,))[1], jax.jvp(sine(jnp), (h,), (W,))[1]
    yield "eigh matrix function vjp", gpuad.vjp(sine(gnp), h)[1](W.T)[0], jax.vjp(sine(jnp), h)[1](W.T)[0]
    yield "eigvalsh vjp", gpuad.vjp(gnp.linalg.eigvalsh, h)[1](x[:5])[0], jax.vjp(jnp.linalg.eigvalsh, h)[1](x[:5])[0]
    yield "eigvals jvp", gpuad.jvp(gnp.linalg.eigvals, (W,), (h,))[1], jax.jvp(jnp.linalg.eigvals, (W,), (h,))[1]
    yield "eigvals vjp", gpuad.vjp(gnp.linalg.eigvals, W)[1](W[0])[0], jax.vjp(jnp.linalg.eigvals, W)[1](W[0])[0]
    def eigenvectors(a):  # JAX differentiates eigenvectors only when asked to
        return jax.lax.linalg.eig(a, compute_left_eigenvectors=False, enable_eigvec_derivs=True)[1]
    # |V| is blind to the eigenvectors' phases
    yield "eig |V| of a real matrix vjp", gpuad.vjp(lambda a: gnp.abs(gnp.linalg.eig(a)[1]), W.real)[1](W.real)[0], \
        jax.vjp(lambda a: jnp.abs(eigenvectors(a)), W.real)[1](W.real)[0]
    yield "qr jvp", gpuad.jvp(lambda a: gnp.linalg.qr(a)[0], (W,), (h,))[1], \
        jax.jvp(lambda a: jnp.linalg.qr(a)[0], (W,), (h,))[1]
    yield "qr vjp (tall)", gpuad.vjp(lambda a: gnp.linalg.qr(a)[1], W[:, :3])[1](W[:3, :3])[0], \
        jax.vjp(lambda a: jnp.linalg.qr(a)[1], W[:, :3])[1](W[:3, :3])[0]

    def svd_function(np):  # U sin(S) V^H: blind to the singular vectors' phases
        return lambda a: (lambda u, s, vh: (u * np.sin(s)) @ vh)(*np.linalg.svd(a, full_matrices=False))
    yield "svd matrix function jvp (wide)", gpuad.jvp(svd_function(gnp), (W[:3],), (h[:3],))[1], \
        jax.jvp(svd_function(jnp), (W[:3],), (h[:3],))[1]
    yield "svd matrix function vjp (tall)", gpuad.vjp(svd_function(gnp), W[:, :3])[1](W[:, 2:])[0], \
        jax.vjp(svd_function(jnp), W[:, :3])[1](W[:, 2:])[0]
    yield "pinv vjp", gpuad.vjp(gnp.linalg.pinv, W[:, :3])[1](W[:3])[0], jax.vjp(jnp.linalg.pinv, W[:, :3])[1](W[:3])[0]
    yield "maximum jvp", gpuad.jvp(gnp.maximum, (z, z[::-1]), (z, x[:len(z)] + 0j))[1], \
        jax.jvp(jnp.maximum, (z, z[::-1]), (z, x[:len(z)] + 0j))[1]
    import jax.scipy.linalg as jsl

    import gpuad.scipy.linalg as gsl
    a = W + 3 * onp.eye(5)
    yield "lu_factor jvp", gpuad.jvp(lambda a: gsl.lu_factor(a)[0], (a,), (h,))[1], \
        jax.jvp(lambda a: jsl.lu_factor(a)[0], (a,), (h,))[1]
    for trans in (0, 1, 2):
        yield f"lu_solve trans={trans} vjp", gpuad.vjp(lambda a, trans=trans: gsl.lu_solve(gsl.lu_factor(a), z, trans),
                                                        a)[1](v)[0], \
            jax.vjp(lambda a, trans=trans: jsl.lu_solve(jsl.lu_factor(a), z, trans), a)[1](v)[0]
    yield ".at[].max jvp", gpuad.jvp(lambda z: gnp.asarray(z).at[1:4].max(v[:3]), (z,), (v,))[1], \
        jax.jvp(lambda z: z.at[1:4].max(v[:3]), (z,), (v,))[1]
    for s, axes in (((4, 6), (-2, -1)), ((6, 9), (-2, -1)), ((3, 4), (1, 0))):
        ct = rng.normal(size=s[::-1] if axes == (1, 0) else s)
        ours = gpuad.vjp(lambda a, s=s, axes=axes: gnp.fft.irfft2(a, s=s, axes=axes), W)[1](ct)[0]
        yield f"irfft2 s={s} axes={axes} vjp", ours, \
            jax.vjp(lambda a, s=s, axes=axes: jnp.fft.irfft2(a, s=s, axes=axes), W)[1](ct)[0]


def main():
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)

    import gpuad
    import gpuad.numpy as gnp
    bad = 0
    for name, ours, theirs in checks(gpuad, gnp, jax, jnp):
        ours, theirs = onp.asarray(ours), onp.asarray(theirs)
        err = onp.max(onp.abs(ours - theirs)) / max(1.0, onp.max(onp.abs(theirs)))
        ok = ours.shape == theirs.shape and err < 1e-12
        bad += not ok
        print(f"{name:45s} {err:.1e} {'ok' if ok else 'MISMATCH'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
