COMMENT
Hay et al. 2011 L5PC (neurosurrogate): small-conductance Ca-activated K
current (SK_E2), after Koehler et al. 1996. g = gbar z, ik = g (v - ek).
The gate depends on cai (mM) only:
  z_inf = 1/(1 + (0.00043/c)^4.8), c = cai (c = cai + 1e-7 if cai < 1e-7)
  tau_z = 1 ms. No temperature factor.
ENDCOMMENT

NEURON {
    SUFFIX HaySK
    USEION k READ ek WRITE ik
    USEION ca READ cai
    RANGE gbar, g, zInf, zTau
    THREADSAFE
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
    (molar) = (1/liter)
    (mM) = (millimolar)
}

PARAMETER {
    gbar = 0.000001 (S/cm2)
    zTau = 1 (ms)
}

ASSIGNED {
    v (mV)
    ek (mV)
    ik (mA/cm2)
    cai (mM)
    g (S/cm2)
    zInf
}

STATE { z }

BREAKPOINT {
    SOLVE states METHOD cnexp
    g = gbar * z
    ik = g * (v - ek)
}

INITIAL {
    rates(cai)
    z = zInf
}

DERIVATIVE states {
    rates(cai)
    z' = (zInf - z) / zTau
}

PROCEDURE rates(ca (mM)) {
    LOCAL c
UNITSOFF
    c = ca
    if (c < 1e-7) {
        c = c + 1e-7
    }
    zInf = 1 / (1 + (0.00043 / c) ^ 4.8)
UNITSON
}
