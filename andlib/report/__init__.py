"""Reports: analyses, plots, the widget neuron browser, the static atlas and the progress of
``reproduce``."""
