"""Describing neurons: captioners (features, wording, backends, the tagger), summarizers,
similarity functions and Modules A, B and C (concept identification, calibration, open set)."""
