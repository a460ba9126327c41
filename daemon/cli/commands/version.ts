import { addonStatus } from '../../intercept/origdst.ts'
import { packageVersion } from '../../paths.ts'
import type { Command } from '../command.ts'

export const versionCommand: Command = {
  name: 'version',
  summary: 'print the hostmesh, Node.js and addon versions',
  help: `Usage: hostmesh version [--json]

Prints the hostmesh version, the Node.js runtime it runs on, and whether the
original-destination addon is built.
`,
  options: { json: { type: 'boolean' } },
  async run(args, io) {
    const addon = addonStatus()
    const info = {
      hostmesh: packageVersion(),
      node: process.version,
      platform: `${process.platform}/${process.arch}`,
      origdstAddon: addon.ok ? 'built' : `unavailable (${addon.reason})`,
    }
    if (args.values.json) io.out(`${JSON.stringify(info)}\n`)
    else io.out(`hostmesh ${info.hostmesh}\nnode ${info.node} ${info.platform}\norigdst addon: ${info.origdstAddon}\n`)
    return 0
  },
}
