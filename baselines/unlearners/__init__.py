"""One module per unlearning method."""
