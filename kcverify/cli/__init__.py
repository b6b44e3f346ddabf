"""Click commands only: parse, call the library, map outcomes to exit codes."""
