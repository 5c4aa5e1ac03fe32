// A mistake in a command line (the CLI exits 2), as opposed to a failure while running the command (exit 1).
export class UsageError extends Error {}
