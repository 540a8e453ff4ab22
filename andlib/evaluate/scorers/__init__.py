"""Explanation scorers behind one interface (:mod:`.base`), registered by name (:mod:`.registry`).

One module per scorer (:mod:`.simulation`, :mod:`.detection`, :mod:`.intruder`); the shared
vectorised metrics are in :mod:`.metrics`, the description variants and baselines in
:mod:`.variants`, the sanity and baseline tables in :mod:`.sanity`.
"""
