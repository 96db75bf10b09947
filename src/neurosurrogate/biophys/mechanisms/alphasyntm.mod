COMMENT
Event-driven alpha-function synapse with Tsodyks-Markram short-term
plasticity, per NetCon (neurosurrogate).

The conductance is the same exact closed-form sum of alpha functions as in
AlphaSynEv (alphasyn.mod): an event at t_i with peak conductance p_i adds

    g_i(t) = p_i * ((t - t_i)/tau) * exp(1 - (t - t_i)/tau)     for t >= t_i

kept as two sums relative to the time t0 of the latest event

    A = sum_i p_i exp((t_i - t0)/tau)
    B = sum_i p_i (t_i - t0) exp((t_i - t0)/tau)
    g(t) = exp(1 - (t - t0)/tau)/tau * ((t - t0) A - B)

(no cutoff: every alpha is exact and untruncated).

Each NetCon is one synaptic contact (one synapse row of a circuit) with its
own short-term plasticity state, kept in the NetCon's weight vector:

    weight  peak conductance before plasticity, nS (>= 0)
    U       utilisation increment, (0, 1]
    D       recovery time constant of the resources, ms (0: no depression)
    F       decay time constant of the utilisation, ms (0: no facilitation)
    u, R    utilisation and available resources after the previous event
    tlast   time of the previous event, ms

For the n-th event, an interval dt = t - tlast after the previous one
(Tsodyks & Markram 1997; Markram et al. 1998; the convention of
neurosurrogate.network.circuit):

    R_n = 1 + (R_{n-1} (1 - u_{n-1}) - 1) exp(-dt/D)    (R_0 = 1; D = 0: R_n = 1)
    u_n = U + u_{n-1} (1 - U) exp(-dt/F)                (u_0 = 0; F = 0: u_n = U)
    p_n = weight * u_n * R_n

R_n uses the previous u (the resources used by the previous event), so it
is computed before u is updated. The first event (tlast = -1e9) gives
p_1 = weight * U; with U = 1, D = 0, F = 0 every event has p = weight and
the mechanism equals AlphaSynEv (without cutoff).
ENDCOMMENT

NEURON {
    POINT_PROCESS AlphaSynTM
    RANGE tau, e, g, i, A, B, t0
    NONSPECIFIC_CURRENT i
}

UNITS {
    (nA) = (nanoamp)
    (mV) = (millivolt)
    (nS) = (nanosiemens)
}

PARAMETER {
    tau = 2 (ms) <1e-9, 1e9>
    e = 0 (mV)
}

ASSIGNED {
    v (mV)
    i (nA)
    g (nS)
    A (nS)
    B (nS ms)
    t0 (ms)
}

INITIAL {
    A = 0
    B = 0
    t0 = 0
    g = 0
}

BREAKPOINT {
    LOCAL s
    s = t - t0
    if (A == 0 && B == 0) {
        g = 0
    } else if (s > 700 * tau) {
        : every event is more than 700 time constants old: exp() underflows
        g = 0
    } else {
        g = exp(1 - s/tau) / tau * (s * A - B)
        if (g < 0) { g = 0 }
    }
    : g in nS, v - e in mV -> pA; 0.001 converts to nA
    i = (0.001) * g * (v - e)
}

NET_RECEIVE(weight (nS), U, D (ms), F (ms), u, R, tlast (ms)) {
    LOCAL dt_ev, fd, ff, f, d
    INITIAL {
        u = 0
        R = 1
        tlast = -1e9
    }
    : short-term plasticity of this contact (guarded: D or F = 0 means no decay term)
    dt_ev = t - tlast
    if (D > 0 && dt_ev < 700 * D) {
        fd = exp(-dt_ev/D)
    } else {
        fd = 0
    }
    if (F > 0 && dt_ev < 700 * F) {
        ff = exp(-dt_ev/F)
    } else {
        ff = 0
    }
    R = 1 + (R * (1 - u) - 1) * fd
    u = U + u * (1 - U) * ff
    tlast = t
    : add an alpha of peak weight*u*R at t (sums re-expressed relative to t)
    d = t - t0
    f = exp(-d/tau)
    B = (B - d * A) * f
    A = A * f + weight * u * R
    t0 = t
}
