// Subcommands whose milestones have not landed yet. Their help is the real interface they
// will have; running them fails with exit 2 and "not implemented yet", never fake output.
import { notImplemented } from '../command.ts'

export const statusCommand = notImplemented('status', 'summarise a running daemon from its admin port', `Usage: hostmesh status [--admin URL]

Prints what the daemon on this host has loaded: policy, identities and their expiry,
listeners, the last reload and the busiest services. Default admin: http://127.0.0.1:15000
`, { admin: { type: 'string' } })
