"""Print the example ``preds`` and ``gts`` folders: ``ambiseg-eval $(python -m ambiseg_metrics.examples)``."""

from . import example_paths

if __name__ == "__main__":
    print(*example_paths())
