"""Reporters: turn result records into text (and later JSON/HTML). They know nothing of argparse."""
