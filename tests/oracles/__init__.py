"""Test oracles: independent, plain re-statements of the reference implementations (ranking metrics, re-ranking,
the Top-DB-Net / BDB forward) that the tests compare reidkit against. Imported as `oracles.<module>`: the root
conftest's folder, tests/, is on sys.path."""
