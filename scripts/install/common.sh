# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are used by the scripts that source this file
# Shared by scripts/install.sh and scripts/uninstall.sh (sourced, never run): messages, the
# root check, the --root option, and the one list of installed paths, so that uninstall
# removes exactly what install puts down. Paths are those of the target system; with
# --root DIR every one of them is taken under DIR (like DESTDIR), and R holds that prefix
# ("" for the running system).

HM_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HM_OPT=/opt/hostmesh
HM_WRAPPER=/usr/bin/hostmesh
HM_UNIT_DIR=/usr/lib/systemd/system
HM_UNITS=(hostmesh-capture.service hostmesh.socket hostmesh.service)
HM_SYSUSERS=/usr/lib/sysusers.d/hostmesh.conf
HM_TMPFILES=/usr/lib/tmpfiles.d/hostmesh.conf
HM_SYSCTL=/usr/lib/sysctl.d/60-hostmesh.conf
HM_ETC=/etc/hostmesh
HM_USER=hostmesh
R=''

say() { printf 'hostmesh: %s\n' "$*"; }
die() { printf 'hostmesh: error: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'hostmesh: %s (see --help)\n' "$*" >&2; exit 2; }

need_root() {
  [[ $(id -u) -eq 0 ]] || die "$(basename "$0") must run as root (sudo): it writes /usr, /opt and /etc, and manages a system user"
}

systemd_running() { [[ -d /run/systemd/system ]]; }

# --root DIR: sets R to DIR's absolute path, or "" for "/". Creates DIR when asked to.
set_root() {
  local dir=$1 create=$2
  [[ -n $dir ]] || usage_error '--root needs a directory'
  if [[ $create == create ]]; then mkdir -p -- "$dir"; fi
  [[ -d $dir ]] || die "--root $dir: no such directory"
  R=$(cd -- "$dir" && pwd -P)
  [[ $R == / ]] && R=''
  return 0
}

# The numeric uid and gid of $HM_USER in the target's /etc/passwd, as "uid:gid", or nothing.
hostmesh_ids() {
  awk -F: -v u="$HM_USER" '$1 == u { print $3 ":" $4; exit }' "$R/etc/passwd" 2>/dev/null || true
}
