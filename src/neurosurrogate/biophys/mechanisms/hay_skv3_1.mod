COMMENT
Hay et al. 2011 L5PC (neurosurrogate): Kv3.1 (Shaw-type) K current (SKv3_1),
after Rettig et al. 1992. g = gbar m, ik = g (v - ek). No temperature factor.
  m_inf = 1/(1 + exp((v - 18.7)/(-9.7)))
  tau_m = 4/(1 + exp((v + 46.56)/(-44.14)))  ms
ENDCOMMENT

NEURON {
    SUFFIX HaySKv31
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
UNITSOFF
    mInf = 1 / (1 + exp((vm - 18.7) / (-9.7)))
    mTau = 4 / (1 + exp((vm + 46.56) / (-44.14)))
UNITSON
}
