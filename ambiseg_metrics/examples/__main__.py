"""Print the example folders: ``ambiseg-eval $(python -m ambiseg_metrics.examples)``; with ``--compare`` the
two models and the annotations: ``ambiseg-eval compare $(python -m ambiseg_metrics.examples --compare)``."""

import sys

from . import example_compare_paths, example_paths

if __name__ == "__main__":
    print(*(example_compare_paths() if "--compare" in sys.argv[1:] else example_paths()))
