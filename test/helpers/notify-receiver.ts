// The receiving end of $NOTIFY_SOCKET for in-process tests: a python3 child (Node cannot bind
// an AF_UNIX datagram socket) that prints each datagram as one JSON line, with the number of
// fds that came with it.
import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const RECEIVER = `
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({"bound": True}), flush=True)
while True:
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(64 * 4))
    fds = [fd for level, kind, data in anc if kind == socket.SCM_RIGHTS for fd in memoryview(data).cast("i")]
    for fd in fds:
        os.close(fd)
    print(json.dumps({"message": msg.decode(), "fds": len(fds)}), flush=True)
`

export interface Notification { readonly message: string; readonly fds: number }

export async function notifyReceiver(t: { teardown(fn: () => unknown): void }): Promise<{ path: string; messages: () => Notification[]; waitFor: (re: RegExp, timeoutMs?: number) => Promise<void> }> {
  const path = join(mkdtempSync(join(tmpdir(), 'hostmesh-notify-')), 'notify')
  const child = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => child.kill())
  let out = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  const messages = (): Notification[] => out.split('\n').filter((l) => l.startsWith('{"message"')).map((l) => JSON.parse(l) as Notification)
  const until = async (check: () => boolean, what: string, timeoutMs: number): Promise<void> => {
    for (const end = Date.now() + timeoutMs; !check();) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; got ${out}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  await until(() => out.includes('"bound"'), 'the receiver to bind', 5000)
  return { path, messages, waitFor: (re, timeoutMs = 5000) => until(() => messages().some((m) => re.test(m.message)), String(re), timeoutMs) }
}
