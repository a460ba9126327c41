// Gate for tests that need real namespaces and iptables. Without root they are skipped, and
// say so loudly on stderr; with root, a missing tool is a failure, never a skip.
import { execFileSync } from 'node:child_process'

let warned = false

export function e2eSkip(): string | false {
  if (process.getuid?.() !== 0) {
    const reason = 'SKIPPED: end-to-end test needs root (network namespaces, iptables); run as root, as CI does'
    if (!warned) {
      warned = true
      process.stderr.write(`\n########################################################################\n# ${reason}\n########################################################################\n\n`)
    }
    return reason
  }
  for (const tool of ['ip', 'iptables', 'ip6tables', 'curl', 'setpriv', 'useradd', 'tcpdump']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    } catch {
      throw new Error(`end-to-end tests need "${tool}" on PATH: run .ci/run, or apt-get install -y iptables iproute2 curl util-linux passwd tcpdump`)
    }
  }
  return false
}
