// Exit codes are part of the interface: systemd (RestartPreventExitStatus), scripts and
// operators act on them. 78 is sysexits' EX_CONFIG: restarting will not fix a bad config.
export const EXIT = Object.freeze({
  OK: 0,
  /** A runtime failure; a restart may help. */
  FAILURE: 1,
  /** Bad command line, unknown subcommand, or a subcommand that is not implemented yet. */
  USAGE: 2,
  /** The node config is missing or invalid. */
  CONFIG: 78,
})
