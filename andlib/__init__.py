"""AND: Audio Network Dissection.

Natural-language descriptions of what individual neurons of acoustic models respond to.
One module per pipeline stage; see ``docs/ARCHITECTURE.md`` for the data flow and the files
each stage writes into a run directory.
"""

__version__ = "0.1.0"
