// What hostmesh answers when node's HTTP/1.1 parser gives up on a client ('clientError'), and
// the bytes of that answer. A parse error gets a status; a transport error (the client reset
// or closed mid-request) gets none: there is nobody to tell, and it is not a rejection of
// anything the client asked, so it is not reported as one (the pipeline already marks a
// request cut short by its client with Envoy's DC flag).
import { STATUS_CODES } from '../net/node-http.ts'

/** A request refused before the pipeline: the status sent and a short, stable reason. */
export interface Rejection {
  readonly status: number
  /** node's error code for parser rejections (HPE_*, ERR_HTTP_REQUEST_TIMEOUT); a fixed phrase for the guard's. */
  readonly reason: string
}

/** The fields of node's clientError error that matter here (llhttp sets `reason`). */
export interface ClientError {
  readonly code?: string
  readonly reason?: string
}

/** The answer to a clientError, or undefined when the client went away (no answer, no report). */
export function clientErrorRejection(err: ClientError): Rejection | undefined {
  const code = err.code ?? ''
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT': return { status: 408, reason: code }
    // The request line and headers over maxRequestHeadersBytes, or more than maxHeadersCount of them.
    case 'HPE_HEADER_OVERFLOW': return { status: 431, reason: code }
    // node's own answer (and the body's, not the head's, limit).
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW': return { status: 413, reason: code }
    // The client closed with a request half sent.
    case 'HPE_INVALID_EOF_STATE': return undefined
    // llhttp says "Transfer-Encoding can't be present with Content-Length" with this code too:
    // that is a framing conflict (400); any other is a coding it does not implement, which
    // RFC 9112 §6.1 and Envoy answer with 501.
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return { status: /content-length/i.test(err.reason ?? '') ? 400 : 501, reason: code }
  }
  return code.startsWith('HPE_') ? { status: 400, reason: code } : undefined
}

const heads = new Map<number, Buffer>()

/** A whole response with no body that closes the connection: `HTTP/1.1 <status> <text>`. */
export function rejectionResponse(status: number): Buffer {
  let head = heads.get(status)
  if (!head) {
    head = Buffer.from(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, 'latin1')
    heads.set(status, head)
  }
  return head
}
