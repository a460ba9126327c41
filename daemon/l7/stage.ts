// A pipeline is an ordered list of stages; each takes the exchange and the rest of the list.
// A stage either answers (and does not call next) or hands on, possibly after changing the
// exchange. Order is decided only by the list in outbound.ts / inbound.ts.

export type Stage<X> = (x: X, next: () => Promise<void>) => Promise<void> | void

export function pipeline<X>(stages: readonly Stage<X>[]): (x: X) => Promise<void> {
  const run = async (x: X, i: number): Promise<void> => {
    const stage = stages[i]
    if (stage) await stage(x, () => run(x, i + 1))
  }
  return (x) => run(x, 0)
}
