COMMENT
Hodgkin-Huxley squid axon channels (as NEURON's built-in hh.mod, same rate
equations and temperature scaling) with one extra parameter: kshift (mV)
shifts the voltage dependence of the delayed-rectifier activation gate n.
The n rates are evaluated at (v - kshift): kshift = +10 mV moves n
activation 10 mV depolarised (K+ opens later), -10 mV hyperpolarised.
With kshift = 0 this mechanism equals hh (checked in the tests).

Units: conductances S/cm2, currents mA/cm2, voltages mV, time ms.
Rates (1/ms) at 6.3 degC, q10 = 3:
  alpha_m = 0.1 vtrap(-(v+40), 10)     beta_m = 4 exp(-(v+65)/18)
  alpha_h = 0.07 exp(-(v+65)/20)       beta_h = 1/(exp(-(v+35)/10) + 1)
  alpha_n = 0.01 vtrap(-(u+55), 10)    beta_n = 0.125 exp(-(u+65)/80), u = v - kshift
ENDCOMMENT

NEURON {
    SUFFIX hhks
    USEION na READ ena WRITE ina
    USEION k READ ek WRITE ik
    NONSPECIFIC_CURRENT il
    RANGE gnabar, gkbar, gl, el, kshift, gna, gk
    THREADSAFE
}

UNITS {
    (mA) = (milliamp)
    (mV) = (millivolt)
    (S) = (siemens)
}

PARAMETER {
    gnabar = 0.12 (S/cm2) <0, 1e9>
    gkbar = 0.036 (S/cm2) <0, 1e9>
    gl = 0.0003 (S/cm2) <0, 1e9>
    el = -54.3 (mV)
    kshift = 0 (mV)
}

STATE { m h n }

ASSIGNED {
    v (mV)
    celsius (degC)
    ena (mV)
    ek (mV)
    gna (S/cm2)
    gk (S/cm2)
    ina (mA/cm2)
    ik (mA/cm2)
    il (mA/cm2)
    minf hinf ninf
    mtau (ms) htau (ms) ntau (ms)
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    gna = gnabar * m * m * m * h
    ina = gna * (v - ena)
    gk = gkbar * n * n * n * n
    ik = gk * (v - ek)
    il = gl * (v - el)
}

INITIAL {
    rates(v)
    m = minf
    h = hinf
    n = ninf
}

DERIVATIVE states {
    rates(v)
    m' = (minf - m) / mtau
    h' = (hinf - h) / htau
    n' = (ninf - n) / ntau
}

PROCEDURE rates(v (mV)) {
    LOCAL alpha, beta, sum, q10, u
    TABLE minf, mtau, hinf, htau, ninf, ntau DEPEND celsius, kshift FROM -100 TO 100 WITH 200
UNITSOFF
    q10 = 3 ^ ((celsius - 6.3) / 10)
    alpha = 0.1 * vtrap(-(v + 40), 10)
    beta = 4 * exp(-(v + 65) / 18)
    sum = alpha + beta
    mtau = 1 / (q10 * sum)
    minf = alpha / sum
    alpha = 0.07 * exp(-(v + 65) / 20)
    beta = 1 / (exp(-(v + 35) / 10) + 1)
    sum = alpha + beta
    htau = 1 / (q10 * sum)
    hinf = alpha / sum
    u = v - kshift
    alpha = 0.01 * vtrap(-(u + 55), 10)
    beta = 0.125 * exp(-(u + 65) / 80)
    sum = alpha + beta
    ntau = 1 / (q10 * sum)
    ninf = alpha / sum
UNITSON
}

FUNCTION vtrap(x, y) {
    : x / (exp(x/y) - 1), with its limit y (1 - x/y/2) near x = 0
    if (fabs(x / y) < 1e-6) {
        vtrap = y * (1 - x / y / 2)
    } else {
        vtrap = x / (exp(x / y) - 1)
    }
}
