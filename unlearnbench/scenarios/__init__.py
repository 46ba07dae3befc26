"""The built-in forgetting scenarios, one module each: class-wise, random and backdoor."""
