COMMENT
Hay et al. 2011 L5PC (neurosurrogate): muscarinic K current Im, after
Adams et al. 1982. g = gbar m, ik = g (v - ek).
  alpha = 3.3e-3 exp(0.1 (v + 35)), beta = 3.3e-3 exp(-0.1 (v + 35))   (1/ms)
  m_inf = alpha/(alpha + beta), tau_m = 1/((alpha + beta) qt),
  qt = 2.3^((34 - 21)/10) (34 degC fixed here).
ENDCOMMENT

NEURON {
    SUFFIX HayIm
    USEION k READ ek WRITE ik
    RANGE gbar, g, mInf, mTau
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
    ek (mV)
    ik (mA/cm2)
    g (S/cm2)
    mInf
    mTau (ms)
}

STATE { m }

BREAKPOINT {
    SOLVE states METHOD cnexp
    g = gbar * m
    ik = g * (v - ek)
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
    LOCAL a, b, qt
UNITSOFF
    qt = 2.3 ^ ((34 - 21) / 10)
    a = 3.3e-3 * exp(0.1 * (vm + 35))
    b = 3.3e-3 * exp(-0.1 * (vm + 35))
    mInf = a / (a + b)
    mTau = 1 / ((a + b) * qt)
UNITSON
}
