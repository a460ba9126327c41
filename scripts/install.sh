#!/usr/bin/env bash
# Installs hostmesh from this checkout as a systemd service. Run as root; idempotent (a second
# run changes nothing and says so). Starts nothing unless asked (--enable, --start).
#
#   /opt/hostmesh/                 the built package: dist/, production node_modules/, the
#                                  addons in build/Release/, docs, policy examples, and its own
#                                  Node 24 runtime in runtime/bin/node
#   /usr/bin/hostmesh              #!/bin/sh wrapper that execs that runtime on dist/daemon/cli.js
#   /usr/lib/systemd/system/hostmesh.{service,socket}, hostmesh-capture.service (the capture
#                                  rules at boot, before the network)
#   /usr/lib/sysusers.d/hostmesh.conf, /usr/lib/tmpfiles.d/hostmesh.conf
#   the hostmesh system user (systemd-sysusers), /etc/hostmesh/{hostmesh.yaml,policy.d,certs}
#     (systemd-tmpfiles; hostmesh.yaml only when absent: an operator's file is never replaced)
set -euo pipefail
umask 022
# shellcheck source=scripts/install/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/install/common.sh"

usage() {
  cat <<EOF
Usage: $0 [--root DIR] [--enable | --start]

Installs hostmesh from this checkout (building it first if needed) under /opt/hostmesh, with
/usr/bin/hostmesh, the systemd units, the hostmesh system user and /etc/hostmesh.

  --root DIR   install into DIR instead of / (packaging, tests): every path goes under DIR,
               the user is created in DIR/etc/passwd; nothing on the running system changes
  --enable     systemctl enable hostmesh-capture.service hostmesh.socket hostmesh.service
               (with --root: offline, in DIR)
  --start      --enable, then start them (not with --root)
  -h, --help   show this help

Running it again is safe: it changes only what differs and never replaces an existing
/etc/hostmesh/hostmesh.yaml.
EOF
}

enable=0 start=0 root=/
while (($#)); do
  case $1 in
    --root) (($# >= 2)) || usage_error '--root needs a directory'; root=$2; shift 2 ;;
    --root=*) root=${1#--root=}; shift ;;
    --enable) enable=1; shift ;;
    --start) enable=1 start=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown argument \"$1\"" ;;
  esac
done
need_root
set_root "$root" create
if [[ -n $R ]] && ((start)); then
  usage_error "--start starts the units of the running system; with --root use --enable"
fi
if [[ -z $R ]] && ((enable)) && ! systemd_running; then
  die "systemd is not running on this machine (no /run/systemd/system), so the units cannot be enabled or started. Nothing was installed. Run it without --enable/--start to install only."
fi
for tool in systemd-sysusers systemd-tmpfiles; do
  command -v "$tool" >/dev/null || die "$tool is not installed (Debian: apt-get install systemd)"
done

changed=0 # set when an installed file or the package changed (a running daemon then needs a restart)

# Copies SRC to DEST with MODE (octal, e.g. 644), owned by root, unless DEST already is exactly that.
put() {
  local src=$1 dest=$2 mode=$3
  if [[ -f $dest && ! -L $dest ]] && cmp -s -- "$src" "$dest" && [[ $(stat -c '%a %u %g' -- "$dest") == "$mode 0 0" ]]; then
    say "unchanged  ${dest#"$R"}"
  else
    install -D -m "$mode" -o root -g root -- "$src" "$dest"
    say "installed  ${dest#"$R"}"
    changed=1
  fi
}

# --- build (in the checkout) -------------------------------------------------------------------
cd "$HM_SRC"
command -v npm >/dev/null || die "npm is not installed: it builds the package and lists its production dependencies (Debian: apt-get install npm)"
if [[ ! -d node_modules ]]; then
  say "node_modules is missing: npm ci"
  npm ci --no-audit --no-fund
fi
[[ -x node_modules/.bin/node ]] || die "node_modules/.bin/node is missing: the node@24 devDependency is not installed (run npm ci)"
# dist/ is stale when it is missing, older than a source, or holds the output of a source that
# is gone (a deleted or renamed module): then it is built anew, so nothing stale is installed.
dist_stale() {
  [[ -f dist/daemon/cli.js ]] || return 0
  [[ -z $(find base daemon policy certs tsconfig.json tsconfig.build.json -newer dist/daemon/cli.js \( -name '*.ts' -o -name 'tsconfig*.json' \) -print -quit) ]] || return 0
  local js
  while IFS= read -r js; do
    js=${js#dist/}
    [[ -f ${js%.js}.ts ]] || return 0
  done < <(find dist -name '*.js')
  return 1
}
if dist_stale; then
  say "building: npm run build"
  rm -rf dist
  npm run build
fi
addons=(build/Release/origdst.node build/Release/sdnotify.node)
for addon in "${addons[@]}"; do
  if [[ ! -f $addon || -n $(find daemon binding.gyp -newer "$addon" \( -name '*.c' -o -name binding.gyp \) -print -quit) ]]; then
    say "building the native addons: npm run build:addon"
    npm run build:addon
    break
  fi
done
for addon in "${addons[@]}"; do
  [[ -f $addon ]] || die "$addon was not built: install a C toolchain (Debian: apt-get install g++ make python3), then npm run build:addon"
done

# The Node 24 runtime behind node_modules/.bin/node (which may be a symlink or a launcher):
# ask it for its own executable.
runtime=$(node_modules/.bin/node -p process.execPath)
major=$("$runtime" -p 'process.versions.node.split(".")[0]')
((major >= 24)) || die "$runtime is Node $major; hostmesh needs Node 24 or newer (the node@24 devDependency: npm ci)"
[[ $(od -An -tx1 -N4 "$runtime") == ' 7f 45 4c 46' ]] || die "$runtime is not an executable binary"

# --- stage the package, then swap it in whole (or keep the old one if nothing differs) ---------
mkdir -p "$R/opt"
stage=$(mktemp -d "$R/opt/.hostmesh-new.XXXXXX")
scratch=$(mktemp -d)
old=''
cleanup() { rm -rf -- "$stage" "$scratch" ${old:+"$old"}; }
trap cleanup EXIT

cp -- package.json README.md "$stage/"
cp -R dist "$stage/dist"
find "$stage/dist" -name '*.map' -delete # they point at TypeScript sources that are not shipped
mkdir -p "$stage/build/Release" "$stage/policy" "$stage/docs" "$stage/runtime/bin"
cp -- "${addons[@]}" "$stage/build/Release/"
cp -R policy/examples "$stage/policy/examples"
cp -- policy/README.md policy/hostmesh-policy.schema.json "$stage/policy/"
cp -- docs/*.md "$stage/docs/"
cp -- "$runtime" "$stage/runtime/bin/node"
# Production dependencies only: npm's own list of the tree without devDependencies. Sorted, so
# a package comes before the packages nested in it (copied with it).
prod=$(npm ls --omit=dev --all --parseable) || die "npm ls found a problem in node_modules (see above): run npm ci"
while IFS= read -r dir; do
  rel=${dir#"$HM_SRC"/}
  [[ $rel == node_modules/* && ! -e $stage/$rel ]] || continue
  mkdir -p "$stage/$(dirname "$rel")"
  cp -R -- "$rel" "$stage/$rel"
done < <(LC_ALL=C sort <<<"$prod")
chown -R root:root "$stage"
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -perm /111 -exec chmod 0755 {} +
find "$stage" -type f ! -perm /111 -exec chmod 0644 {} +

# Every entry's path, type, mode, owner and link target, and every file's hash.
manifest() {
  (cd "$1" && find . -printf '%p %y %m %U:%G %l\n' | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}
if [[ -d $R$HM_OPT ]] && cmp -s <(manifest "$R$HM_OPT") <(manifest "$stage"); then
  say "unchanged  $HM_OPT"
else
  if [[ -e $R$HM_OPT ]]; then
    old=$(mktemp -d "$R/opt/.hostmesh-old.XXXXXX")
    mv -- "$R$HM_OPT" "$old/"
  fi
  mv -- "$stage" "$R$HM_OPT"
  say "installed  $HM_OPT ($(du -sh "$R$HM_OPT" | cut -f1), Node $("$R$HM_OPT/runtime/bin/node" --version))"
  changed=1
fi

# exec: the runtime takes this shell's pid, which systemd watches (Type=notify, NotifyAccess=main).
wrapper=$scratch/hostmesh
cat >"$wrapper" <<EOF
#!/bin/sh
# hostmesh: installed by scripts/install.sh. exec keeps the pid (hostmesh.service is
# Type=notify with NotifyAccess=main).
exec $HM_OPT/runtime/bin/node $HM_OPT/dist/daemon/cli.js "\$@"
EOF
put "$wrapper" "$R$HM_WRAPPER" 755

# --- units, user, /etc/hostmesh -----------------------------------------------------------------
for unit in "${HM_UNITS[@]}"; do put "systemd/$unit" "$R$HM_UNIT_DIR/$unit" 644; done
put systemd/hostmesh.sysusers "$R$HM_SYSUSERS" 644
put systemd/hostmesh.tmpfiles "$R$HM_TMPFILES" 644
put systemd/hostmesh.sysctl "$R$HM_SYSCTL" 644

mkdir -p "$R/etc"
if [[ -n $(hostmesh_ids) ]]; then
  say "unchanged  user $HM_USER ($(hostmesh_ids))"
else
  systemd-sysusers ${R:+"--root=$R"} "$R$HM_SYSUSERS"
  ids=$(hostmesh_ids)
  [[ -n $ids ]] || die "systemd-sysusers did not create the user $HM_USER in $R/etc/passwd"
  say "created    user $HM_USER ($ids)"
fi
# /etc/hostmesh 0755, policy.d 0755, certs 0700 hostmesh:hostmesh (created or corrected).
systemd-tmpfiles --create ${R:+"--root=$R"} "$R$HM_TMPFILES"
say "ensured    $HM_ETC, $HM_ETC/policy.d, $HM_ETC/certs (0700 $HM_USER)"
if [[ -e $R$HM_ETC/hostmesh.yaml ]]; then
  say "kept       $HM_ETC/hostmesh.yaml (an existing file is never replaced)"
else
  install -m 644 -o root -g root -- systemd/etc-hostmesh/hostmesh.yaml "$R$HM_ETC/hostmesh.yaml"
  say "installed  $HM_ETC/hostmesh.yaml (the example: edit node.name and node.addresses)"
fi
# Private keys readable by the daemon only. The certs dir belongs to the service user, who
# could swap an entry for a symlink or a hard link between a check and a chown/chmod (chmod
# follows symlinks). So while keys are fixed the dir is root's (0700): nothing unprivileged
# can change an entry in it any more (an open fd does not help: permissions are checked at
# each change). A subdirectory that is not root's, or that others can write, is left alone
# for the same reason. Only regular files with one link are fixed (a hard link planted to a
# file elsewhere has two); then the dir goes back to the service user.
ids=$(hostmesh_ids)
certs=$R$HM_ETC/certs
[[ -d $certs && ! -L $certs ]] || die "$certs is not a directory"
chown --no-dereference root:root -- "$certs"
chmod 0700 -- "$certs"
status=0
found=$(find -P "$certs" -mindepth 1 -type d \( ! -uid 0 -o -perm /022 \) -prune -printf 'skipped %p\n' \
  -o -type f -name '*key*.pem' -links 1 \( ! -perm 0600 -o ! -uid "${ids%:*}" -o ! -gid "${ids#*:}" \) \
  -execdir chown --no-dereference "$ids" {} \; -execdir chmod 0600 {} \; -printf 'fixed %p\n') || status=$?
chown --no-dereference "$ids" -- "$certs"
chmod 0700 -- "$certs"
((status == 0)) || die "fixing the keys in $HM_ETC/certs failed (above)"
while IFS=' ' read -r what path; do
  case $what in
    fixed) say "fixed      ${path#"$R"} (0600 $HM_USER)" ;;
    skipped) say "warning: skipped ${path#"$R"}: it is not root's, or others can write it, so its keys are not checked (chown root:root and chmod go-w it)" ;;
  esac
done <<<"$found"

# --- systemd -------------------------------------------------------------------------------------
if [[ -n $R ]]; then
  if ((enable)); then
    systemctl --root="$R" enable "${HM_UNITS[@]}"
    say "enabled    ${HM_UNITS[*]} (in $R)"
  fi
elif ! systemd_running; then
  say "note: systemd is not running on this machine (no /run/systemd/system): skipped systemctl daemon-reload"
else
  systemctl daemon-reload
  if ((enable)); then
    systemctl enable "${HM_UNITS[@]}"
    say "enabled    ${HM_UNITS[*]}"
  fi
  if ((start)); then
    # The capture rules first (the daemon syncs them too once it runs; a running daemon's
    # ports are kept). --no-block: a failure shows in systemctl status hostmesh-capture.
    systemctl start --no-block hostmesh-capture.service
    systemctl start hostmesh.socket
    # --no-block: READY=1 waits for the node CA (TimeoutStartSec=5min); systemctl status tells.
    if systemctl -q is-active hostmesh.service; then
      if ((changed)); then systemctl restart --no-block hostmesh.service && say "restarting hostmesh.service (new files)"; fi
    else
      systemctl start --no-block hostmesh.service
      say "starting   hostmesh.service (systemctl status hostmesh; it is ready once /ready says so)"
    fi
  elif ((changed)) && systemctl -q is-active hostmesh.service; then
    say "note: hostmesh.service is running the previous files: systemctl restart hostmesh"
  fi
fi

cat <<EOF

hostmesh is installed${R:+ in $R}. Next steps:
  1. Give this host its node CA. Where the mesh root CA is (hostmesh ca init --dir ROOT):
       hostmesh ca node --ca ROOT --node NODE --out DIR
     then copy DIR/ca-cert.pem, ca-key.pem and bundle.pem into $HM_ETC/certs/ on this host
     and give the key to the service: chown $HM_USER:$HM_USER $HM_ETC/certs/ca-key.pem
     (running this script again does that too: every *key*.pem there becomes 0600 $HM_USER).
  2. Edit $HM_ETC/hostmesh.yaml (node.name = NODE, node.addresses), and put the policy in
     $HM_ETC/policy.d/ (examples: $HM_OPT/policy/examples; check it with hostmesh validate).
  3. systemctl enable --now hostmesh-capture.service hostmesh.socket hostmesh.service
     (hostmesh-capture installs the capture rules at every boot, before the network)
     then: systemctl status hostmesh, journalctl -u hostmesh, hostmesh status
     (changes such as the log level go to the admin socket, as root:
      curl --unix-socket /run/hostmesh/admin.sock -X POST 'http://localhost/logging?level=debug')
EOF
