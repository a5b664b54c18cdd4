"""The lab: a self-contained network of namespaces where vc5 does its real job.

Used by `make demo` (tests/lab/demo.py) and by the end-to-end tests.
"""
