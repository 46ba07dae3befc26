"""One module per pruning method."""
