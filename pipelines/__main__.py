"""``python -m pipelines`` is the same CLI as ``mlops``."""

from pipelines.cli.main import main

if __name__ == "__main__":
    main()
