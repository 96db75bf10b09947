COMMENT
Hay et al. 2011 L5PC (neurosurrogate): transient Na current NaTs2_t: NaTa_t shifted by +6 mV.
g = gbar m^3 h, ina = g (v - ena). Times divided by qt = 2.3^((34 - 21)/10)
(34 degC fixed here). With Vm = -32 and Vh = -60 (mV):
  alpha_m = 0.182 (v - Vm)/(1 - exp(-(v - Vm)/6))
  beta_m  = 0.124 (-v + Vm)/(1 - exp(-(-v + Vm)/6))     (v = Vm: v += 1e-4)
  alpha_h = -0.015 (v - Vh)/(1 - exp((v - Vh)/6))
  beta_h  = -0.015 (-v + Vh)/(1 - exp((-v + Vh)/6))     (v = Vh: v += 1e-4)
  x_inf = alpha/(alpha + beta), tau_x = 1/((alpha + beta) qt)
A shifted v stays in use for the rest of the rate evaluation.
ENDCOMMENT

NEURON {
    SUFFIX HayNaTs2
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
    if (u == -32) {
        u = u + 0.0001
    }
    a = 0.182 * (u + 32) / (1 - exp(-(u + 32) / 6))
    b = 0.124 * (-u - 32) / (1 - exp(-(-u - 32) / 6))
    mInf = a / (a + b)
    mTau = 1 / ((a + b) * qt)
    if (u == -60) {
        u = u + 0.0001
    }
    a = -0.015 * (u + 60) / (1 - exp((u + 60) / 6))
    b = -0.015 * (-u - 60) / (1 - exp((-u - 60) / 6))
    hInf = a / (a + b)
    hTau = 1 / ((a + b) * qt)
UNITSON
}
