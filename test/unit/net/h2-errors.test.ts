// The reasons are read from what node says when its guards end a session; these are the
// errors Node 24 gives for each flood (measured with scripts/netns/workloads/abuse-client.ts).
import t from 'tap'
import { h2CloseReason } from '../../../daemon/net/h2-errors.ts'

const h2 = (message: string, code = 'ERR_HTTP2_ERROR'): Error & { code: string } => Object.assign(new Error(message), { code })

t.equal(h2CloseReason(h2('Flooding was detected in this HTTP/2 session, and it must be closed')), 'flood', 'SETTINGS and PING floods')
t.equal(h2CloseReason(h2('Too many CONTINUATION frames following a HEADER frame')), 'flood', 'CONTINUATION flood, oversized HEADERS')
t.equal(h2CloseReason(h2('The user callback function failed')), 'reset_flood', 'rapid reset')
t.equal(h2CloseReason(h2('Protocol error')), 'protocol')
t.equal(h2CloseReason(h2('Something new', 'ERR_HTTP2_SESSION_ERROR')), 'other')
t.equal(h2CloseReason(h2('read ECONNRESET', 'ECONNRESET')), undefined, 'a connection error is not the peer\'s abuse')
