"""The file-based runner: readers and case discovery, per-case evaluation, reports, Dask, the CLI."""
