"""Training: the SGD loop and recipes (``loop``), pruning masks, and the runtime (device, precision, compile)."""
