"""The run: its phases, its outputs, resume, the run dir, ranks, loggers and exits."""
