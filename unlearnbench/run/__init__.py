"""Running trials: configuration, cached artifacts, one trial, RTE timing and recipes."""
