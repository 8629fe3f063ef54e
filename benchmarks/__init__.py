"""Speed benchmarks: each script prints JSON figures, ratios against a reference measured in the same run."""
