// The Greeter service the gRPC workloads speak, defined without proto files: JSON messages.
// Imports only @grpc/grpc-js (test/e2e/l7-grpc.test.ts makes it readable to workload uids).
import grpc from '@grpc/grpc-js'

const json = {
  serialize: (v: unknown): Buffer => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer): unknown => JSON.parse(b.toString('utf8')),
}

function method(name: string, responseStream: boolean): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: `/hello.Greeter/${name}`, originalName: name, requestStream: false, responseStream,
    requestSerialize: json.serialize, requestDeserialize: json.deserialize,
    responseSerialize: json.serialize, responseDeserialize: json.deserialize,
  }
}

export const GREETER = {
  SayHello: method('SayHello', false),
  Count: method('Count', true),
  Fail: method('Fail', false),
  Forbidden: method('Forbidden', false),
  Flaky: method('Flaky', false),
  Slow: method('Slow', false),
} satisfies grpc.ServiceDefinition
