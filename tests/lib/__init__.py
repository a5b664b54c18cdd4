"""Shared test helpers: network namespaces, a private D-Bus, process control, BPF_PROG_TEST_RUN
(testrun), and required test dependencies (require: missing ones fail, never skip)."""
