"""The receiving side: a C-STORE SCP that persists and enqueues, nothing more (STYLE habit 3)."""
