"""The run: its phases, its outputs, resume, the run dir, ranks, loggers and exits."""

# A run that ended with these statuses trained as asked (its metrics can be ranked): it ran
# its epochs, early stopping stopped it, or trainer.max_steps / trainer.max_time did.
FINISHED = ("completed", "early_stopped", "max_steps", "max_time")
