"""Model families: one module per family, each defining ``FAMILY`` (see ``registry``)."""
