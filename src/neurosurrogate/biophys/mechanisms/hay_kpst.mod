COMMENT
Hay et al. 2011 L5PC (neurosurrogate): slow persistent K current (K_Pst),
after Korngreen & Sakmann 2000. g = gbar m^2 h, ik = g (v - ek).
Rates use u = v + 10; times divided by qt = 2.3^((34 - 21)/10).
  m_inf = 1/(1 + exp(-(u + 1)/12))
  tau_m = (1.25 + 175.03 exp(0.026 u))/qt   if u < -50
          (1.25 + 13 exp(-0.026 u))/qt      otherwise
  h_inf = 1/(1 + exp((u + 54)/11))
  tau_h = (360 + (1010 + 24 (u + 55)) exp(-((u + 75)/48)^2))/qt
ENDCOMMENT

NEURON {
    SUFFIX HayKPst
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
    g = gbar * m * m * h
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
    mInf = 1 / (1 + exp(-(u + 1) / 12))
    if (u < -50) {
        mTau = (1.25 + 175.03 * exp(0.026 * u)) / qt
    } else {
        mTau = (1.25 + 13 * exp(-0.026 * u)) / qt
    }
    hInf = 1 / (1 + exp((u + 54) / 11))
    z = (u + 75) / 48
    hTau = (360 + (1010 + 24 * (u + 55)) * exp(-z * z)) / qt
UNITSON
}
