import { resolveConfigPath } from '../../config/load.ts'
import { Daemon } from '../../run/lifecycle.ts'
import { stringOption, type Command } from '../command.ts'

export const runCommand: Command = {
  name: 'run',
  summary: 'run the daemon in the foreground (what systemd starts)',
  help: `Usage: hostmesh run [--config FILE]

Runs the hostmesh daemon in the foreground until SIGTERM or SIGINT, then drains and exits 0:
/ready turns false (systemd hears STOPPING=1), the listeners stop accepting, in-flight
connections get up to drainSeconds, and whatever remains is closed. SIGHUP re-reads the
policy dir and the certificate files now.

Under systemd (Type=notify) it sends READY=1 when /ready is ready and keeps the watchdog
fed; it takes hostmesh.socket's listening sockets from LISTEN_FDS and keeps the outbound
ones in the fd store, so a restart refuses no connection (docs/operations.md).

Options:
  -c, --config FILE   node config (default: $HOSTMESH_CONFIG, else /etc/hostmesh/hostmesh.yaml)
  -h, --help          show this help

Exit codes: 0 stopped cleanly, 1 runtime failure, 2 usage error, 75 a listening port could
not be bound, 78 invalid node config (a restart will not fix it).
`,
  options: { config: { type: 'string', short: 'c' } },
  async run(args, io) {
    // SIGHUP's default action kills the process: hold it from the first moment, before the
    // daemon is up (a reload is then done once it is) and through the drain (ignored).
    let daemon: Daemon | undefined
    let hupBeforeStart = false
    const onHup = (): void => {
      if (daemon) void daemon.reload('SIGHUP')
      else hupBeforeStart = true
    }
    process.on('SIGHUP', onHup)
    daemon = await Daemon.start({ configPath: resolveConfigPath(stringOption(args, 'config'), io.env) })
    if (hupBeforeStart) void daemon.reload('SIGHUP')
    const running = daemon
    await new Promise<void>((resolve) => {
      const onSignal = (signal: NodeJS.Signals): void => {
        process.off('SIGTERM', onSignal)
        process.off('SIGINT', onSignal)
        process.off('SIGHUP', onHup)
        process.on('SIGHUP', () => {})
        void running.stop(signal).then(() => {
          // Everything is closed; if a stray handle (a library's watcher) still holds the
          // event loop, do not hang the stop: systemd would SIGKILL us after TimeoutStopSec.
          // Said, because a restart's new daemon waits for this exit (test/e2e/l7-drain.test.ts).
          setTimeout(() => {
            running.log.component('run').warn({ holding: process.getActiveResourcesInfo().filter((r) => r !== 'Timeout') }, 'something still held the event loop 2 s after the drain: exiting anyway')
            running.log.flush()
            process.exit(process.exitCode ?? 0)
          }, 2000).unref()
          resolve()
        })
      }
      process.on('SIGTERM', onSignal)
      process.on('SIGINT', onSignal)
    })
    return 0
  },
}
