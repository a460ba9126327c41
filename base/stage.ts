// A pipeline is an ordered list of stages; each takes its context and the rest of the list.
// A stage either ends the work (answers, refuses, hands the connection on) and does not call
// next, or hands on, possibly after changing the context. Order is decided only by the lists
// in daemon/l4/{outbound,inbound}.ts and daemon/l7/{outbound,inbound}.ts.
// Stages run synchronously until one awaits: a list of stages that never await does its
// whole work in the caller's turn, as the code it replaced did.

export type Stage<X> = (x: X, next: () => Promise<void>) => Promise<void> | void

const DONE: Promise<void> = Promise.resolve()

export function pipeline<X>(stages: readonly Stage<X>[]): (x: X) => Promise<void> {
  // Not an async function: a stage's own promise is passed on as it is, and a stage that
  // returns nothing costs no promise and no await (the request path runs ~10 stages per
  // request; an async frame per stage showed in its profile).
  const run = (x: X, i: number): Promise<void> => {
    const stage = stages[i]
    if (!stage) return DONE
    try {
      return stage(x, () => run(x, i + 1)) ?? DONE
    } catch (err) {
      return Promise.reject(err)
    }
  }
  return (x) => run(x, 0)
}

/** A branch: when `when(x)`, `x` goes down `stages` instead of the rest of this list. */
export function fork<X>(when: (x: X) => boolean, stages: readonly Stage<X>[]): Stage<X> {
  const branch = pipeline(stages)
  return (x, next) => (when(x) ? branch(x) : next())
}
