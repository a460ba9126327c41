// How many data-path threads `workers` means, and the kernel setting that lets them come and
// go without resetting queued connections.
import { availableParallelism } from 'node:os'
import { readFile, writeFile } from 'node:fs/promises'
import type { Logger } from '../../base/logger.ts'

/** auto: one per CPU this process may use (cgroup and affinity limits included), as Envoy's --concurrency default. */
export function workerCount(setting: 'auto' | number): number {
  return setting === 'auto' ? availableParallelism() : setting
}

const MIGRATE_REQ = '/proc/sys/net/ipv4/tcp_migrate_req'

/**
 * net.ipv4.tcp_migrate_req=1 (Linux ≥ 5.14, per network namespace): when one socket of a
 * reuseport group closes (a worker thread that died or drains), the connections queued on it
 * move to another socket of the group instead of being reset. Best effort: under
 * ProtectKernelTunables=yes /proc/sys is read-only, and the sysctl belongs in
 * /etc/sysctl.d (docs/workers.md).
 */
export async function enableRequestMigration(log: Logger, path = MIGRATE_REQ): Promise<boolean> {
  try {
    if ((await readFile(path, 'utf8')).trim() === '1') return true
    await writeFile(path, '1\n')
    return true
  } catch (err) {
    log.warn({ sysctl: 'net.ipv4.tcp_migrate_req', error: (err as Error).message }, 'could not enable net.ipv4.tcp_migrate_req: connections queued on a worker thread\'s socket when it exits are reset; set it in /etc/sysctl.d')
    return false
  }
}
