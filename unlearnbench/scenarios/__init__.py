"""Forgetting scenarios beyond the class-wise and random splits: the backdoor (Trojan) scenario."""
