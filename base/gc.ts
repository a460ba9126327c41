// V8's gc(): the daemon asks for a collection in two places (run/memory.ts after a burst,
// tunnel/relay-gc.ts while bytes are relayed). It is only reachable with --expose-gc, which a
// started isolate still accepts for contexts made afterwards; one such context per isolate.
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

export type Collect = (options: { type: 'major' | 'minor'; execution: 'sync' | 'async'; flavor?: 'regular' | 'last-resort' }) => void

let collect: Collect | undefined

export function v8Collect(): Collect {
  if (!collect) {
    setFlagsFromString('--expose-gc')
    collect = runInNewContext('gc') as Collect
  }
  return collect
}
