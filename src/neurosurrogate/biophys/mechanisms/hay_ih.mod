COMMENT
Hay et al. 2011 L5PC (neurosurrogate): hyperpolarisation-activated cation
current Ih, after Kole, Hallermann & Stuart 2006. g = gbar m,
ihcn = g (v - ehcn), ehcn = -45 mV. No temperature factor.
  alpha = 0.00643 (v + 154.9)/(exp((v + 154.9)/11.9) - 1)   (v = -154.9: v += 1e-4)
  beta  = 0.193 exp(v/33.1)
  m_inf = alpha/(alpha + beta), tau_m = 1/(alpha + beta)
ENDCOMMENT

NEURON {
    SUFFIX HayIh
    NONSPECIFIC_CURRENT ihcn
    RANGE gbar, g, ehcn, mInf, mTau
    THREADSAFE
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gbar = 0.00001 (S/cm2)
    ehcn = -45 (mV)
}

ASSIGNED {
    v (mV)
    ihcn (mA/cm2)
    g (S/cm2)
    mInf
    mTau (ms)
}

STATE { m }

BREAKPOINT {
    SOLVE states METHOD cnexp
    g = gbar * m
    ihcn = g * (v - ehcn)
}

INITIAL {
    rates(v)
    m = mInf
}

DERIVATIVE states {
    rates(v)
    m' = (mInf - m) / mTau
}

PROCEDURE rates(vm (mV)) {
    LOCAL u, a, b
UNITSOFF
    u = vm
    if (u == -154.9) {
        u = u + 0.0001
    }
    a = 0.00643 * (u + 154.9) / (exp((u + 154.9) / 11.9) - 1)
    b = 0.193 * exp(u / 33.1)
    mInf = a / (a + b)
    mTau = 1 / (a + b)
UNITSON
}
