"""sr1step: one-step diffusion super-resolution."""

import logging as _logging

__version__ = "0.1.0"

# bitsandbytes (pulled in through peft and pyiqa) logs a warning about an optional CPU kernel
# package on import; sr1step never uses 4-bit layers, and users should not see an error-looking
# line on every successful run.
_logging.getLogger("bitsandbytes").setLevel(_logging.ERROR)
