"""The metric families: GED, Collective Insight, matching (HM-IoU), NCC, multi-class."""
