"""The notebook (its cells and its steps) and the papermill batch runner of the six variants."""
