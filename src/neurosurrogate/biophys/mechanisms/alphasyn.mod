COMMENT
Event-driven alpha-function synapse (neurosurrogate).

One point process receives any number of events through NetCons. Each event
(time t_i, NetCon weight w_i in nS) adds an exact alpha-function conductance

    g_i(t) = w_i * ((t - t_i)/tau) * exp(1 - (t - t_i)/tau)     for t >= t_i

which peaks at w_i when t - t_i = tau. The sum over events is kept exactly
in closed form relative to a reference time t0 (the time of the latest
event):

    A = sum_i w_i exp((t_i - t0)/tau)
    B = sum_i w_i (t_i - t0) exp((t_i - t0)/tau)
    g(t) = exp(1 - (t - t0)/tau)/tau * ((t - t0) A - B)

On each event the sums are re-expressed relative to the new event time, so
every factor stays <= 1 and nothing overflows in long runs. There is no ODE
to integrate: the conductance is exact at whatever time NEURON evaluates the
current, like the built-in AlphaSynapse, but one object serves all events.

cutoff (in units of tau, default 0 = never): NEURON's built-in AlphaSynapse
sets its conductance to zero 10 tau after onset (where it has decayed to
1.2e-3 of its peak). With cutoff = 10 this mechanism does the same, exactly:
each event sends itself a second event cutoff*tau later (its onset time in
the flag) that removes its term from A and B. Used to check this mechanism
against AlphaSynapse; simulations use the exact, untruncated alpha.
ENDCOMMENT

NEURON {
    POINT_PROCESS AlphaSynEv
    RANGE tau, e, g, i, A, B, t0, cutoff
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
    cutoff = 0 (1) <0, 1e9>
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

NET_RECEIVE(weight (nS)) {
    LOCAL f, d, ti
    if (flag == 0) {
        d = t - t0
        f = exp(-d/tau)
        B = (B - d * A) * f
        A = A * f + weight
        t0 = t
        if (cutoff > 0) {
            : remember the onset (+1 so that the flag is never 0)
            net_send(cutoff * tau, t + 1)
        }
    } else {
        : remove the term of the event that started at ti
        ti = flag - 1
        d = ti - t0
        f = exp(d/tau)
        A = A - weight * f
        B = B - weight * d * f
    }
}
