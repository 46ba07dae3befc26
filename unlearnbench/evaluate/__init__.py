"""Evaluation: the paper's metrics (UA, MIA-Efficacy, RA, TA) and the probes measured before and after unlearning."""
