COMMENT
Hay et al. 2011 L5PC (neurosurrogate): submembrane calcium pool (CaDynamics_E2),
after Destexhe et al. 1994.

    dcai/dt = -10000 ica gamma / (2 F depth) - (cai - minCai) / decay

ica (mA/cm2) is the compartment's total calcium current, gamma the free
(unbuffered) fraction, depth (um) the shell depth, F NMODL's Faraday
constant; 10000 converts to mM/ms. There is deliberately no INITIAL block:
cai starts at NEURON's cai0_ca_ion (5e-5 mM), as in the original model.
Writing cai makes NEURON compute eca by the Nernst equation.
ENDCOMMENT

NEURON {
    SUFFIX HayCaDyn
    USEION ca READ ica WRITE cai
    RANGE gamma, decay, depth, minCai
    THREADSAFE
}

UNITS {
    (mV) = (millivolt)
    (mA) = (milliamp)
    FARADAY = (faraday) (coulombs)
    (molar) = (1/liter)
    (mM) = (millimolar)
    (um) = (micron)
}

PARAMETER {
    gamma = 0.05 (1)
    decay = 80 (ms)
    depth = 0.1 (um)
    minCai = 1e-4 (mM)
}

ASSIGNED {
    ica (mA/cm2)
}

STATE {
    cai (mM)
}

BREAKPOINT {
    SOLVE states METHOD cnexp
}

DERIVATIVE states {
UNITSOFF
    cai' = -(10000) * (ica * gamma / (2 * FARADAY * depth)) - (cai - minCai) / decay
UNITSON
}
