"""Probing data: audio I/O, ESC-50, any folder of audio, synthetic and pitched probes, note names."""
