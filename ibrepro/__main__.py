"""`python -m ibrepro`: the command line, as the `ibrepro` script runs it."""

from ibrepro.cli import main

if __name__ == "__main__":
    main()
