"""Consistent pseudonyms: keyed UID remapping, patient pseudonyms and date offsets (decision 4)."""
