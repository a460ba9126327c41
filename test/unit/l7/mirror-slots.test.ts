// The mirror's concurrency cap: per process and per mirror service, over either a copy gets
// no slot (it is dropped, never queued), and a released slot is free again at once.
import t from 'tap'
import { MIRROR_MAX_IN_FLIGHT, MirrorSlots } from '../../../daemon/l7/mirror-slots.ts'

t.test('per mirror service: at most its limit in flight, others unaffected', async (t) => {
  const slots = new MirrorSlots(100)
  const held = [slots.acquire('a.t', 2), slots.acquire('a.t', 2)]
  t.ok(held.every(Boolean), 'two slots for a.t')
  t.equal(slots.acquire('a.t', 2), undefined, 'a third is refused')
  t.ok(slots.acquire('b.t', 2), 'another service still gets one')
  t.equal(slots.inFlight('a.t'), 2)
  t.equal(slots.inFlight(), 3)
  held[0]!()
  t.equal(slots.inFlight('a.t'), 1)
  t.ok(slots.acquire('a.t', 2), 'a released slot is free again')
})

t.test('per process: the total is capped across services', async (t) => {
  const slots = new MirrorSlots(3)
  const got = ['a', 'b', 'c', 'd'].map((s) => slots.acquire(s, 10))
  t.ok(got.slice(0, 3).every(Boolean))
  t.equal(got[3], undefined, 'the fourth copy, to a service with room, is refused by the process cap')
  got[1]!()
  t.ok(slots.acquire('d', 10), 'room again after a release')
  t.equal(slots.inFlight(), 3)
})

t.test('a release counts once; the default cap is 1024', async (t) => {
  const slots = new MirrorSlots()
  const release = slots.acquire('a.t', 1)!
  release()
  release()
  t.equal(slots.inFlight(), 0)
  t.equal(slots.inFlight('a.t'), 0)
  t.equal(MIRROR_MAX_IN_FLIGHT, 1024)
  const all = Array.from({ length: MIRROR_MAX_IN_FLIGHT }, (_, i) => slots.acquire(`s${i}`, 1))
  t.ok(all.every(Boolean))
  t.equal(slots.acquire('one-more', 1), undefined)
})
