// A mirrored copy's Host/:authority gets `-shadow` after the host, before any port, as Envoy's
// shadowAppendedHost does, IPv6 literals included.
import t from 'tap'
import { shadowAuthority } from '../../../daemon/l7/mirror-send.ts'

t.test('-shadow goes after the host and before the port', async (t) => {
  t.equal(shadowAuthority('foo'), 'foo-shadow')
  t.equal(shadowAuthority('foo:8080'), 'foo-shadow:8080')
  t.equal(shadowAuthority('api.shop.svc.cluster.local:80'), 'api.shop.svc.cluster.local-shadow:80')
  t.equal(shadowAuthority('10.96.0.20'), '10.96.0.20-shadow')
  t.equal(shadowAuthority('10.96.0.20:80'), '10.96.0.20-shadow:80')
})

t.test('an IPv6 literal\'s colons are not a port', async (t) => {
  t.equal(shadowAuthority('[fd00::1]'), '[fd00::1]-shadow')
  t.equal(shadowAuthority('[fd00::1]:8080'), '[fd00::1]-shadow:8080')
})
