// Exit codes are part of the interface: systemd (RestartPreventExitStatus), scripts and
// operators act on them. 78 is sysexits' EX_CONFIG: restarting will not fix a bad config.
export const EXIT = Object.freeze({
  OK: 0,
  /** A runtime failure; a restart may help. */
  FAILURE: 1,
  /** Bad command line or unknown subcommand. */
  USAGE: 2,
  /** A listening port could not be bound (EX_TEMPFAIL): another process holds it; a restart may help. */
  BIND: 75,
  /** The node config is missing or invalid. */
  CONFIG: 78,
})
