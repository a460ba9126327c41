#!/usr/bin/env bash
# Removes what scripts/install.sh installed: stops and disables the units, removes every
# hostmesh iptables rule (before the package that knows how goes, and checks that none is
# left), the units, the sysusers and tmpfiles confs, /usr/bin/hostmesh, /opt/hostmesh and the
# hostmesh user. Keeps /etc/hostmesh (policy and certificates, then owned by root) unless
# --purge. Run as root; idempotent.
set -euo pipefail
umask 022
# shellcheck source=scripts/install/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/install/common.sh"

usage() {
  cat <<EOF
Usage: $0 [--root DIR [--remove-rules]] [--purge]

Stops and disables hostmesh-capture.service, hostmesh.socket and hostmesh.service, removes
the hostmesh iptables rules of this network namespace (and checks that none is left), then
the units, /usr/bin/hostmesh, /opt/hostmesh and the hostmesh user. If the rules cannot be
removed, it stops there and removes nothing.

  --root DIR       uninstall from DIR instead of / (as install.sh --root DIR installed it).
                   The iptables rules of this network namespace are not DIR's: they are
                   left alone unless --remove-rules is given
  --remove-rules   with --root: remove the hostmesh iptables rules of the current network
                   namespace too (without --root they are always removed)
  --purge          also remove /etc/hostmesh: node config, policy and certificates (node CA
                   key); without it /etc/hostmesh/certs is given to root, as the hostmesh
                   user's uid is freed for reuse
  -h, --help       show this help
EOF
}

purge=0 remove_rules=0 root=/
while (($#)); do
  case $1 in
    --root) (($# >= 2)) || usage_error '--root needs a directory'; root=$2; shift 2 ;;
    --root=*) root=${1#--root=}; shift ;;
    --remove-rules) remove_rules=1; shift ;;
    --purge) purge=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown argument \"$1\"" ;;
  esac
done
need_root
set_root "$root" exists
[[ -n $R ]] || remove_rules=1

# Removes PATH (under the root) if it is there, and says which.
remove() {
  if [[ -e $R$1 || -L $R$1 ]]; then
    rm -rf -- "$R$1"
    say "removed    $1"
  else
    say "absent     $1"
  fi
}

# --- stop and disable --------------------------------------------------------------------------
# Only the units that are there (an older install has no hostmesh-capture.service).
units=()
for unit in "${HM_UNITS[@]}"; do [[ -f $R$HM_UNIT_DIR/$unit ]] && units+=("$unit"); done
if ((${#units[@]})); then
  if [[ -z $R ]] && systemd_running; then
    # The drain takes up to drainSeconds; the rules stay in place until the next step
    # (stopping hostmesh-capture.service removes nothing).
    systemctl disable --now "${units[@]}"
    say "stopped and disabled ${units[*]}"
  else
    # No running systemd to stop anything: remove the enablement symlinks offline.
    systemctl --root="${R:-/}" disable "${units[@]}"
    say "disabled   ${units[*]}${R:+ (in $R)}"
  fi
fi

# --- iptables: with the installed package, else with this checkout ------------------------------
# What is left of hostmesh in the nat and filter tables (every line naming HOSTMESH), IPv4 then IPv6, as
# the commands that remove it: the jumps, then the chains. Fails when a table cannot be
# listed. IPv6 is skipped on a kernel without it.
hostmesh_rules() {
  local tool table rules line chains
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    [[ $tool == iptables || -e /proc/net/if_inet6 ]] || continue
    # nat holds the capture, filter the owner guard (docs/capture.md).
    for table in nat filter; do
      rules=$("$tool" -w 5 -t "$table" -S) || return 1
      chains=()
      while IFS= read -r line; do
        case $line in
          "-N HOSTMESH"*) chains+=("${line#-N }") ;;
          "-A HOSTMESH"*) ;; # a rule in a hostmesh chain: flushed with it
          "-A "*HOSTMESH*) printf '  %s -w 5 -t %s -D %s\n' "$tool" "$table" "${line#-A }" ;;
          *HOSTMESH*) printf '  %s -w 5 -t %s ... (by hand) %s\n' "$tool" "$table" "$line" ;;
        esac
      done <<<"$rules"
      for line in "${chains[@]}"; do printf '  %s -w 5 -t %s -F %s && %s -w 5 -t %s -X %s\n' "$tool" "$table" "$line" "$tool" "$table" "$line"; done
    done
  done
}
if ((!remove_rules)); then
  say "iptables   left as they are: with --root, the rules of this network namespace are not $R's (--remove-rules removes them)"
elif ! command -v iptables >/dev/null; then
  say "iptables   not installed: no rules to remove"
else
  if [[ -x $R$HM_OPT/runtime/bin/node && -f $R$HM_OPT/dist/daemon/cli.js ]]; then
    cli=("$R$HM_OPT/runtime/bin/node" "$R$HM_OPT/dist/daemon/cli.js")
  elif [[ -x $HM_SRC/node_modules/.bin/node ]]; then
    cli=("$HM_SRC/node_modules/.bin/node" "$HM_SRC/daemon/cli.ts")
  else
    cli=()
  fi
  if ((${#cli[@]})); then
    # Not inside say's argument: set -e does not see a command substitution fail there.
    out=$("${cli[@]}" iptables remove) || die "'hostmesh iptables remove' failed (exit $?, above), so the hostmesh rules may still capture traffic. The units are disabled; nothing else was removed. Fix the cause and run $0 again."
    say "iptables   $out"
  fi
  left=$(hostmesh_rules) || die "could not list the nat or filter table (iptables -S, above), so it is not known whether hostmesh rules are left. The units are disabled; nothing else was removed."
  if [[ -n $left ]]; then
    if ((${#cli[@]})); then why="'hostmesh iptables remove' left hostmesh rules in the nat or filter table"; else why="hostmesh iptables rules are present, but neither $HM_OPT nor this checkout (no node_modules: run npm ci) can run 'hostmesh iptables remove'"; fi
    die "$why. The units are disabled; nothing else was removed. Remove the rules with
$left
then run $0 again."
  fi
  ((${#cli[@]})) || say "iptables   no hostmesh rules"
fi

# --- files, user --------------------------------------------------------------------------------
remove "$HM_WRAPPER"
for unit in "${HM_UNITS[@]}"; do remove "$HM_UNIT_DIR/$unit"; done
remove "$HM_SYSUSERS"
remove "$HM_TMPFILES"
remove "$HM_SYSCTL"
remove "$HM_OPT"
rm -rf -- "$R/opt/.hostmesh-new."* "$R/opt/.hostmesh-old."* # an interrupted install's leftovers

# Kept files must not stay owned by the hostmesh uid and gid: once freed, the next system user
# or group created gets them (and with them the node CA key). Before userdel, while the ids
# are known: the certs dir goes to root whole (chown -R -P -h: no symlink is followed, in the
# dir or out of it), and anything else in /etc/hostmesh that is the user's or the group's.
# install.sh gives the certs dir and the keys back.
if ((!purge)) && [[ -d $R$HM_ETC && ! -L $R$HM_ETC ]]; then
  certs=$R$HM_ETC/certs
  if [[ -d $certs && ! -L $certs && -n $(find -P "$certs" \( ! -uid 0 -o ! -gid 0 \) -print -quit) ]]; then
    chown --no-dereference root:root -- "$certs" # first: nothing unprivileged can change entries now
    chown -R -P --no-dereference root:root -- "$certs"
    say "re-owned   $HM_ETC/certs (root:root: the $HM_USER user goes, its uid may be reused)"
  fi
  ids=$(hostmesh_ids)
  if [[ -n $ids ]]; then
    find -P "$R$HM_ETC" -uid "${ids%:*}" -exec chown --no-dereference 0 -- {} + -printf "hostmesh: re-owned   $HM_ETC/%P (user root)\n"
    find -P "$R$HM_ETC" -gid "${ids#*:}" -exec chgrp --no-dereference 0 -- {} + -printf "hostmesh: re-owned   $HM_ETC/%P (group root)\n"
  fi
fi

if [[ -n $(hostmesh_ids) ]]; then
  userdel ${R:+--root "$R"} "$HM_USER"
  say "removed    user $HM_USER"
else
  say "absent     user $HM_USER"
fi
# userdel keeps the group where USERGROUPS_ENAB is off (or login.defs is absent, as under --root).
if grep -q "^$HM_USER:" "$R/etc/group" 2>/dev/null; then
  groupdel ${R:+--root "$R"} "$HM_USER"
  say "removed    group $HM_USER"
fi

if ((purge)); then
  remove "$HM_ETC"
elif [[ -e $R$HM_ETC ]]; then
  say "kept       $HM_ETC (node config, policy, certificates; --purge removes it)"
fi
if [[ -z $R ]] && systemd_running; then systemctl daemon-reload; fi
say "uninstalled${R:+ from $R}"
