"""Clean Pixel Data: find burned-in text in frames and blank it (DESIGN.md decision 6)."""
