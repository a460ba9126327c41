// Synthetic policies for the policy benchmarks: N services, each with a workload, a virtual
// IP and an HTTPRoute with a header-matched rule and a 90/10 split, spread over files.
export function syntheticPolicy(services: number, perFile = 100): Array<{ name: string; text: string }> {
  const V = 'apiVersion: hostmesh.io/v1alpha1\n'
  const nodes = Array.from({ length: 10 }, (_, i) => `${V}kind: Node\nmetadata: {name: n${i}}\nspec: {addresses: [10.1.${i}.1]}\n`).join('---\n')
  const files = [{ name: '00-nodes.yaml', text: nodes }]
  for (let f = 0; f * perFile < services; f++) {
    const docs: string[] = []
    for (let i = f * perFile; i < Math.min(services, (f + 1) * perFile); i++) {
      const ip = `10.${96 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`
      docs.push(
        `${V}kind: Workload\nmetadata: {name: w${i}, namespace: bench, labels: {app: s${i}}}\nspec: {node: n${i % 10}, match: {uid: ${10000 + i}}, ports: [{name: http, port: ${20000 + (i % 40000)}}]}\n`,
        `${V}kind: Service\nmetadata: {name: s${i}, namespace: bench}\nspec: {addresses: [${ip}], ports: [{name: http, port: 80, protocol: http, targetPort: http}], selector: {app: s${i}}}\n`,
        `${V}kind: HTTPRoute\nmetadata: {name: r${i}, namespace: bench}\nspec:\n  parentRefs: [{name: s${i}}]\n  rules:\n    - matches: [{path: {type: PathPrefix, value: /v2}, headers: [{name: x-canary, value: "1"}]}]\n      backendRefs: [{name: s${i}, port: 80}]\n    - matches: [{path: {type: PathPrefix, value: /}}]\n      backendRefs: [{name: s${i}, port: 80, weight: 90}, {name: s${(i + 1) % services}, port: 80, weight: 10}]\n      timeouts: {request: 5s, backendRequest: 1s}\n      retry: {attempts: 2, codes: [503]}\n`,
      )
    }
    files.push({ name: `${String(f + 1).padStart(4, '0')}-services.yaml`, text: docs.join('---\n') })
  }
  return files
}
