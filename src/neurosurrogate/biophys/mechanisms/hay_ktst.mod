COMMENT
Hay et al. 2011 L5PC (neurosurrogate): fast transient K current (K_Tst),
after Korngreen & Sakmann 2000. g = gbar m^4 h, ik = g (v - ek).
Rates use u = v + 10; times divided by qt = 2.3^((34 - 21)/10).
  m_inf = 1/(1 + exp(-u/19))        tau_m = (0.34 + 0.92 exp(-((u + 71)/59)^2))/qt
  h_inf = 1/(1 + exp((u + 66)/10))  tau_h = (8 + 49 exp(-((u + 73)/23)^2))/qt
ENDCOMMENT

NEURON {
    SUFFIX HayKTst
    USEION k READ ek WRITE ik
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
    ek (mV)
    ik (mA/cm2)
    g (S/cm2)
    mInf
    mTau (ms)
    hInf
    hTau (ms)
}

STATE { m h }

BREAKPOINT {
    SOLVE states METHOD cnexp
    g = gbar * m * m * m * m * h
    ik = g * (v - ek)
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
    LOCAL u, qt, z
UNITSOFF
    qt = 2.3 ^ ((34 - 21) / 10)
    u = vm + 10
    mInf = 1 / (1 + exp(-u / 19))
    z = (u + 71) / 59
    mTau = (0.34 + 0.92 * exp(-z * z)) / qt
    hInf = 1 / (1 + exp((u + 66) / 10))
    z = (u + 73) / 23
    hTau = (8 + 49 * exp(-z * z)) / qt
UNITSON
}
