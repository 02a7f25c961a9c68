"""ImageJ/Fiji macro commands (emdenoise/) and example lab workflows (examples/), installed as emdenoise._fiji_macros."""
