"""The Kargo language in pure Python: typed specs per kind, expressions, Freight IDs, semver,
durations, times, URL normalisation, redaction and the one subprocess runner.

Nothing in this package imports Django; the apps build on it, never the other way round.
"""
