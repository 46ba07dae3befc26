"""unlearnbench's own small architectures (any timm architecture works by name too)."""
