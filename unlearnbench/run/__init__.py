"""Running trials: configuration, identity and provenance, cached artifacts, one trial, RTE timing,
executors, recipes, audits and tuning."""
