from . import vaanet  # noqa: F401  (registers)
