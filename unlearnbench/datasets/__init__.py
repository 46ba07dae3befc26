"""unlearnbench's own datasets, registered through the ``unlearnbench.datasets`` entry points."""
