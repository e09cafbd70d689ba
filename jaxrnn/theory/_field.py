"""Vector fields of the sigma = 0 reduced flows with their exact Jacobians, in closed form.

The two-pole loss (`_twopole`) depends on the state x only through the transfer-function coefficients
c(x) = (a1, a0, b1, b0), a cubic polynomial of x, and phi(c) = L is rational in c:

    phi = b1^2/(4 a1) + b0^2/(4 a0 a1) - Re sum_j r_j (b1 s_j + b0)/(s_j^2 + a1 s_j + a0) + |k*|^2/2.

So grad_x L = Jc^T grad phi and Hess_x L = Jc^T (Hess phi) Jc + sum_m (d phi/d c_m) Hess c_m, with Jc = dc/dx.
With Delta_j = s_j^2 + a1 s_j + a0, N_j = b1 s_j + b0 and e_j = (s_j, 1): dDelta/d(a1, a0) = dN/d(b1, b0) = e_j,
so the cross term's derivatives are -N e/Delta^2 (a), e/Delta (b), 2 N e e^T/Delta^3 (aa), -e e^T/Delta^2 (ab),
0 (bb). Everything is written on "rows" (one array per scalar of the state, lanes last) and uses no matrix
products, so that XLA emits elementwise loops across cells instead of batched tiny dot products.

The flow is dx/dt = -R grad_x L (R = the rate of each coordinate: 1 for the 8-ODE, (1, 1/2, 1, 1/2, 1/2) for
the 5-ODE, docs/theory.md section 2), so f'(x) = -R Hess_x L.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["phi_derivatives", "five_field", "eight_field", "FIVE_RATES", "EIGHT_RATES"]


def _cmul(x, y):
    return x[0] * y[0] - x[1] * y[1], x[0] * y[1] + x[1] * y[0]


def phi_derivatives(c, target, hessian: bool):
    """(grad phi, Hess phi) in the order (a1, a0, b1, b0); target leaves carry a trailing lanes axis.

    Complex numbers are carried as (real, imaginary) pairs of real arrays: XLA's complex division is far
    slower than these few real operations, and real arithmetic fuses into one loop."""
    a1, a0, b1, b0 = c
    s = (target.s_re, target.s_im)  # (J, lanes)
    r = (target.r_re, target.r_im)
    ia1, ia0 = 1.0 / a1, 1.0 / a0
    s2 = _cmul(s, s)
    # the rows (lanes,) meet the (J, lanes) target leaves: lift them to (1, lanes) explicitly (rank promotion)
    lift = lambda w: w[(None,) * (s[0].ndim - w.ndim)] if jnp.ndim(w) else w
    a1j, a0j, b1j, b0j = lift(a1), lift(a0), lift(b1), lift(b0)
    Dr, Di = s2[0] + a1j * s[0] + a0j, s2[1] + a1j * s[1]
    m = 1.0 / (Dr * Dr + Di * Di)
    iD = (Dr * m, -Di * m)
    N = (b1j * s[0] + b0j, b1j * s[1])
    rb = _cmul(r, iD)
    rN = _cmul(_cmul(rb, N), iD)
    re = lambda w: jnp.sum(w[0], 0)
    re_s = lambda w: jnp.sum(w[0] * s[0] - w[1] * s[1], 0)
    re_s2 = lambda w: jnp.sum(w[0] * s2[0] - w[1] * s2[1], 0)
    B2 = b1 * b1 + b0 * b0 * ia0
    g = [
        -0.25 * B2 * ia1 * ia1 + re_s(rN),
        -0.25 * b0 * b0 * ia0 * ia0 * ia1 + re(rN),
        0.5 * b1 * ia1 - re_s(rb),
        0.5 * b0 * ia0 * ia1 - re(rb),
    ]
    if not hessian:
        return g, None
    w3 = _cmul(rN, iD)
    w3 = (2.0 * w3[0], 2.0 * w3[1])
    w2 = _cmul(rb, iD)
    a3_2, a3_1, a3_0 = re_s2(w3), re_s(w3), re(w3)
    a2_2, a2_1, a2_0 = re_s2(w2), re_s(w2), re(w2)
    h_a1a1 = 0.5 * B2 * ia1**3 - a3_2
    h_a1a0 = 0.25 * b0 * b0 * ia0 * ia0 * ia1 * ia1 - a3_1
    h_a0a0 = 0.5 * b0 * b0 * ia0**3 * ia1 - a3_0
    h_a1b1 = -0.5 * b1 * ia1 * ia1 + a2_2
    h_a1b0 = -0.5 * b0 * ia0 * ia1 * ia1 + a2_1
    h_a0b1 = a2_1
    h_a0b0 = -0.5 * b0 * ia0 * ia0 * ia1 + a2_0
    H = [
        [h_a1a1, h_a1a0, h_a1b1, h_a1b0],
        [h_a1a0, h_a0a0, h_a0b1, h_a0b0],
        [h_a1b1, h_a0b1, 0.5 * ia1, 0.0],
        [h_a1b0, h_a0b0, 0.0, 0.5 * ia0 * ia1],
    ]
    return g, H


def _mul(a, b):
    """a * b with Python 0 as a structural zero (no array op emitted)."""
    if isinstance(a, (int, float)) and a == 0 or isinstance(b, (int, float)) and b == 0:
        return 0.0
    return a * b


def _sum(xs):
    xs = [x for x in xs if not (isinstance(x, (int, float)) and x == 0)]
    if not xs:
        return 0.0
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def _assemble(x, c, Jc, second, rates, target, jacobian):
    """f = -R Jc^T g and, if asked, f' = -R (Jc^T H Jc + second(g))."""
    n = len(x)
    g, H = phi_derivatives(c, target, jacobian)
    grad = [_sum(_mul(Jc[m][i], g[m]) for m in range(4)) for i in range(n)]
    f = [-rates[i] * grad[i] for i in range(n)]
    if not jacobian:
        return f, None
    assert H is not None  # jacobian=True
    HJ = [[_sum(_mul(H[m][p], Jc[p][j]) for p in range(4)) for j in range(n)] for m in range(4)]
    S = second(g)
    J = [
        [-rates[i] * (_sum(_mul(Jc[m][i], HJ[m][j]) for m in range(4)) + S[i][j]) for j in range(n)]
        for i in range(n)
    ]
    return f, J


FIVE_RATES = (1.0, 0.5, 1.0, 0.5, 0.5)
EIGHT_RATES = (1.0,) * 8


def five_field(x, target, jacobian: bool):
    """5-ODE, x = (alpha, beta, delta, p, q): M = [[alpha, beta], [-beta, delta]], a = (p, q), b = (p, -q).

    T = alpha + delta, D = alpha delta + beta^2, m0 = p^2 - q^2, m1 = alpha p^2 + 2 beta p q - delta q^2,
    c = (2 - T, 1 - T + D, m0, (1 - T) m0 + m1)."""
    al, be, de, p, q = x
    T = al + de
    m0 = p * p - q * q
    m1 = al * p * p + 2.0 * be * p * q - de * q * q
    D = al * de + be * be
    c = (2.0 - T, 1.0 - T + D, m0, (1.0 - T) * m0 + m1)
    one_T = 1.0 - T
    Jc = [
        [-1.0, 0, -1.0, 0, 0],
        [de - 1.0, 2.0 * be, al - 1.0, 0, 0],
        [0, 0, 0, 2.0 * p, -2.0 * q],
        [
            p * p - m0,
            2.0 * p * q,
            -m0 - q * q,
            2.0 * p * one_T + 2.0 * al * p + 2.0 * be * q,
            -2.0 * q * one_T + 2.0 * be * p - 2.0 * de * q,
        ],
    ]

    def second(g):
        ga0, gb1, gb0 = g[1], g[2], g[3]
        S = [[0.0] * 5 for _ in range(5)]
        S[0][2] = S[2][0] = ga0
        S[1][1] = 2.0 * ga0
        S[0][4] = S[4][0] = 2.0 * q * gb0
        S[1][3] = S[3][1] = 2.0 * q * gb0
        S[1][4] = S[4][1] = 2.0 * p * gb0
        S[2][3] = S[3][2] = -2.0 * p * gb0
        S[3][3] = 2.0 * gb1 + (2.0 * one_T + 2.0 * al) * gb0
        S[3][4] = S[4][3] = 2.0 * be * gb0
        S[4][4] = -2.0 * gb1 - (2.0 * one_T + 2.0 * de) * gb0
        return S

    return _assemble(x, c, Jc, second, FIVE_RATES, target, jacobian)


def eight_field(x, target, jacobian: bool):
    """8-ODE, x = (M00, M01, M10, M11, a1, a2, b1, b2) (rate 1 everywhere).

    T = M00 + M11, D = M00 M11 - M01 M10, m0 = b.a, m1 = b^T M a, c = (2 - T, 1 - T + D, m0, (1 - T) m0 + m1)."""
    M00, M01, M10, M11, u1, u2, v1, v2 = x
    Mm = ((M00, M01), (M10, M11))
    u, v = (u1, u2), (v1, v2)
    T = M00 + M11
    D = M00 * M11 - M01 * M10
    m0 = u1 * v1 + u2 * v2
    Mu = [Mm[i][0] * u1 + Mm[i][1] * u2 for i in range(2)]  # (M a)_i
    vM = [v1 * Mm[0][j] + v2 * Mm[1][j] for j in range(2)]  # (b^T M)_j
    m1 = v1 * Mu[0] + v2 * Mu[1]
    c = (2.0 - T, 1.0 - T + D, m0, (1.0 - T) * m0 + m1)
    one_T = 1.0 - T
    dT = [1.0, 0, 0, 1.0, 0, 0, 0, 0]
    dD = [M11, -M10, -M01, M00, 0, 0, 0, 0]
    dm0 = [0, 0, 0, 0, v1, v2, u1, u2]
    dm1 = [v[0] * u[0], v[0] * u[1], v[1] * u[0], v[1] * u[1], vM[0], vM[1], Mu[0], Mu[1]]
    Jc = [
        [-a for a in dT],
        [_sum([-dT[i], dD[i]]) for i in range(8)],
        dm0,
        [_sum([_mul(one_T, dm0[i]), _mul(-m0, dT[i]), dm1[i]]) for i in range(8)],
    ]

    def second(g):
        ga0, gb1, gb0 = g[1], g[2], g[3]
        S = [[0.0] * 8 for _ in range(8)]
        # Hess D: (M00, M11) = 1, (M01, M10) = -1
        S[0][3] = S[3][0] = ga0
        S[1][2] = S[2][1] = -ga0
        # Hess m0: (a_k, b_k) = 1, weight gb1 + (1 - T) gb0
        w0 = gb1 + one_T * gb0
        for kk in range(2):
            S[4 + kk][6 + kk] = S[6 + kk][4 + kk] = w0
        # -gb0 (dm0 dT^T + dT dm0^T): dT is e_0 + e_3, dm0 lives on a, b
        for i in (0, 3):
            for j in range(4, 8):
                S[i][j] = S[j][i] = _sum([S[i][j], -gb0 * dm0[j]])
        # Hess m1: (M_ij, a_j) = b_i, (M_ij, b_i) = a_j, (a_j, b_i) = M_ij
        for i in range(2):
            for j in range(2):
                mi = 2 * i + j
                S[mi][4 + j] = S[4 + j][mi] = _sum([S[mi][4 + j], gb0 * v[i]])
                S[mi][6 + i] = S[6 + i][mi] = _sum([S[mi][6 + i], gb0 * u[j]])
                S[4 + j][6 + i] = S[6 + i][4 + j] = _sum([S[4 + j][6 + i], gb0 * Mm[i][j]])
        return S

    return _assemble(x, c, Jc, second, EIGHT_RATES, target, jacobian)
