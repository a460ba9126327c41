// HTTP/2 flow control for HBONE. ztunnel's values as the starting point (4 MiB per stream,
// 16 MiB per connection, 1 MiB frames): bulk transfers are not throttled by the default 64 KiB
// windows. The L4 throughput benchmark is where these are confirmed or changed.
import type { Settings } from 'node:http2'

export const STREAM_WINDOW = 4 << 20
export const CONNECTION_WINDOW = 16 << 20
export const MAX_FRAME = 1 << 20
export const MAX_STREAMS_PER_SESSION = 100
export const IDLE_SESSION_MS = 5 * 60_000

/**
 * A CONNECT's header list (and a response's): :authority, a few HBONE headers, a traceparent.
 * 16 KiB is ample; node's default is 64 KiB. A peer that sends more gets its stream reset
 * (docs/config.md, "hbone").
 */
export const MAX_HEADER_LIST = 16 << 10

export const H2_SETTINGS: Settings = { initialWindowSize: STREAM_WINDOW, maxFrameSize: MAX_FRAME, maxConcurrentStreams: MAX_STREAMS_PER_SESSION, maxHeaderListSize: MAX_HEADER_LIST }
