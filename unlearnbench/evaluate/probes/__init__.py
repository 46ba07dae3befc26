"""The built-in probes, one module each: backdoor (attack success rate) and transfer (linear probe)."""
