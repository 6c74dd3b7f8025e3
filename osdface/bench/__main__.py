"""``python -m osdface.bench``: the pipeline benchmark (``osdface.bench.pipeline``)."""

from osdface.bench.pipeline import main

if __name__ == "__main__":
    main()
