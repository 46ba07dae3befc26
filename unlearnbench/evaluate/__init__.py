"""Evaluation: the paper's metrics (UA, MIA-Efficacy, RA, TA), the probes measured before and
after unlearning, and the per-example audit estimators (margins, KLoM, U-LiRA) that score a
population of trained models."""
