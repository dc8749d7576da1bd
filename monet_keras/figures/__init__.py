"""The report's figures, each a function that returns a matplotlib Figure and can save a PNG."""
