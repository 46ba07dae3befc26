"""The reference unlearners and pruners, registered through entry points like any plugin."""
