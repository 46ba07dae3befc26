"""Small grids several tests run as subprocesses (a recipe file they write where they need it)."""

# the tiny digits setting: 300 training images, a 4-epoch original, a second or so per trial;
# six trials per seed pair (FT, GA and none, class 1)
DIGITS_RECIPE = """
description = "a tiny digits grid"
paper = "none"

[run]
dataset = "digits"
train_size = 300
test_size = 100
train = { epochs = 4 }

[grid]
method = [{ method = "ft", params = { epochs = 2 } }, { method = "ga", params = { epochs = 1 } }, "none"]
pruning = ["dense"]
forget = ["class:1"]
"""
