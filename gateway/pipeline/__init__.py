"""The worker pipeline: stages run in order on one instance, each ending in one outcome."""
