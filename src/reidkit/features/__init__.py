"""Test features: the one pipeline that makes them (pipeline.py) and the one module that reads and writes
feature files (files.py). Above data and models, below engine, postprocess and retrieval."""
