COMMENT
Hay et al. 2011 L5PC (neurosurrogate): low-voltage-activated (T-type) Ca
current (Ca_LVAst), after Avery & Johnston 1996 and Randall 1997.
g = gbar m^2 h, ica = g (v - eca). Rates use u = v + 10 (junction potential);
time constants are divided by qt = 2.3^((34 - 21)/10) (34 degC fixed here).
  m_inf = 1/(1 + exp((u + 30)/(-6)))   tau_m = (5 + 20/(1 + exp((u + 25)/5)))/qt
  h_inf = 1/(1 + exp((u + 80)/6.4))    tau_h = (20 + 50/(1 + exp((u + 40)/7)))/qt
ENDCOMMENT

NEURON {
    SUFFIX HayCaLVA
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
    LOCAL u, qt
UNITSOFF
    qt = 2.3 ^ ((34 - 21) / 10)
    u = vm + 10
    mInf = 1 / (1 + exp((u + 30) / (-6)))
    mTau = (5 + 20 / (1 + exp((u + 25) / 5))) / qt
    hInf = 1 / (1 + exp((u + 80) / 6.4))
    hTau = (20 + 50 / (1 + exp((u + 40) / 7))) / qt
UNITSON
}
