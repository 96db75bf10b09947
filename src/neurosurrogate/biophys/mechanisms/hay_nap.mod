COMMENT
Hay et al. 2011 L5PC (neurosurrogate): persistent Na current (Nap_Et2), after
Magistretti & Alonso 1999. g = gbar m^3 h, ina = g (v - ena).
Times divided by qt = 2.3^((34 - 21)/10) (34 degC fixed here).
  m_inf = 1/(1 + exp(-(v + 52.6)/4.6))            (evaluated before any shift)
  tau_m = 6/((alpha_m + beta_m) qt), alpha_m, beta_m as NaTa_t's m (centre -38)
  h_inf = 1/(1 + exp((v + 48.8)/10))
  alpha_h = -2.88e-6 (v + 17)/(1 - exp((v + 17)/4.63))
  beta_h  = 6.94e-6 (v + 64.4)/(1 - exp(-(v + 64.4)/2.63))
  tau_h = 1/((alpha_h + beta_h) qt)
Singular points -38, -17, -64.4 are checked in that order (v += 1e-4 mV on
exact equality) before h_inf is computed; a shifted v stays in use.
ENDCOMMENT

NEURON {
    SUFFIX HayNap
    USEION na READ ena WRITE ina
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
    ena (mV)
    ina (mA/cm2)
    g (S/cm2)
    mInf
    mTau (ms)
    hInf
    hTau (ms)
}

STATE { m h }

BREAKPOINT {
    SOLVE states METHOD cnexp
    g = gbar * m * m * m * h
    ina = g * (v - ena)
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
    LOCAL u, a, b, qt
UNITSOFF
    qt = 2.3 ^ ((34 - 21) / 10)
    u = vm
    mInf = 1 / (1 + exp(-(u + 52.6) / 4.6))
    if (u == -38) {
        u = u + 0.0001
    }
    a = 0.182 * (u + 38) / (1 - exp(-(u + 38) / 6))
    b = 0.124 * (-u - 38) / (1 - exp(-(-u - 38) / 6))
    mTau = 6 / ((a + b) * qt)
    if (u == -17) {
        u = u + 0.0001
    }
    if (u == -64.4) {
        u = u + 0.0001
    }
    hInf = 1 / (1 + exp((u + 48.8) / 10))
    a = -2.88e-6 * (u + 17) / (1 - exp((u + 17) / 4.63))
    b = 6.94e-6 * (u + 64.4) / (1 - exp(-(u + 64.4) / 2.63))
    hTau = 1 / ((a + b) * qt)
UNITSON
}
