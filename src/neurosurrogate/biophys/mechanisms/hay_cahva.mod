COMMENT
Hay et al. 2011 L5PC (neurosurrogate): high-voltage-activated Ca current
(Ca_HVA), after Reuveni et al. 1993. g = gbar m^2 h, ica = g (v - eca).
No temperature factor. Rates (1/ms), v in mV:
  alpha_m = 0.055 (-27 - v) / (exp((-27 - v)/3.8) - 1)   (v = -27: v += 1e-4)
  beta_m  = 0.94 exp((-75 - v)/17)
  alpha_h = 0.000457 exp((-13 - v)/50)
  beta_h  = 0.0065 / (exp((-v - 15)/28) + 1)
  x_inf = alpha/(alpha + beta), tau_x = 1/(alpha + beta)
ENDCOMMENT

NEURON {
    SUFFIX HayCaHVA
    USEION ca READ eca WRITE ica
    RANGE gbar, g, mInf, mTau, hInf, hTau
    THREADSAFE
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gbar = 0.00001 (S/cm2)
}

ASSIGNED {
    v (mV)
    eca (mV)
    ica (mA/cm2)
    g (S/cm2)
    mInf
    mTau (ms)
    hInf
    hTau (ms)
}

STATE { m h }

BREAKPOINT {
    SOLVE states METHOD cnexp
    g = gbar * m * m * h
    ica = g * (v - eca)
}

INITIAL {
    rates(v)
    m = mInf
    h = hInf
}

DERIVATIVE states {
    rates(v)
    m' = (mInf - m) / mTau
    h' = (hInf - h) / hTau
}

PROCEDURE rates(vm (mV)) {
    LOCAL u, a, b
UNITSOFF
    u = vm
    if (u == -27) {
        u = u + 0.0001
    }
    a = 0.055 * (-27 - u) / (exp((-27 - u) / 3.8) - 1)
    b = 0.94 * exp((-75 - u) / 17)
    mInf = a / (a + b)
    mTau = 1 / (a + b)
    a = 0.000457 * exp((-13 - u) / 50)
    b = 0.0065 / (exp((-u - 15) / 28) + 1)
    hInf = a / (a + b)
    hTau = 1 / (a + b)
UNITSON
}
