"""``python -m sr1step``: the same as the ``sr1step`` command."""

from .cli import main

if __name__ == "__main__":
    main()
