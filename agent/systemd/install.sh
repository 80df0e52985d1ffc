#!/usr/bin/env bash
# Installs the edge provenance agent (or, with --service gateway, the fleet gateway) as a systemd
# service: its system user (`provenance`, `provenance-gateway`), the unit (with @NODE@ and @APP_DIR@
# filled in) and a config under /etc/provenance-agent/ or /etc/provenance-gateway/ (never
# overwritten). Starts nothing unless --enable is given; --dry-run only prints what it would do.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: install.sh [options]

  --app-dir DIR   application folder (default: the repository holding this script)
  --node PATH     node binary, version 20 or later (default: `command -v node`)
  --root DIR      install below DIR (a staging or package root): files only, no user, no systemctl
  --service NAME  agent (default) or gateway
  --gpu           add the provenance user to the `video` group (Jetson GPU device nodes; agent only)
  --tpm           keyStore "tpm": install the drop-in that grants /dev/tpmrm0 and only it (agent only)
  --enable        enable and start the service after installing (default: daemon-reload only)
  --dry-run       print every action, change nothing
  -h, --help      this help

Exit codes: 0 ok, 1 failure, 2 usage error.
USAGE
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
app_dir=$(cd "$script_dir/../.." && pwd)
node_bin=$(command -v node || true)
root=""
service=agent
gpu=0
tpm=0
enable=0
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --app-dir) [ $# -ge 2 ] || { echo "install.sh: --app-dir needs a value" >&2; exit 2; }; app_dir=$2; shift 2 ;;
    --node) [ $# -ge 2 ] || { echo "install.sh: --node needs a value" >&2; exit 2; }; node_bin=$2; shift 2 ;;
    --root) [ $# -ge 2 ] || { echo "install.sh: --root needs a value" >&2; exit 2; }; root=$2; shift 2 ;;
    --service) [ $# -ge 2 ] || { echo "install.sh: --service needs a value" >&2; exit 2; }; service=$2; shift 2 ;;
    --gpu) gpu=1; shift ;;
    --tpm) tpm=1; shift ;;
    --enable) enable=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

fail() { echo "install.sh: $*" >&2; exit 1; }
repo_dir=$(cd "$script_dir/../.." && pwd)
case "$service" in
  agent)
    name=provenance-agent; user=provenance; entry=dist/agent/cli/main.js
    template="$script_dir/provenance-agent.service"; example="$script_dir/config.example.json" ;;
  gateway)
    name=provenance-gateway; user=provenance-gateway; entry=dist/gateway/main.js
    template="$repo_dir/gateway/systemd/provenance-gateway.service"; example="$repo_dir/gateway/systemd/config.example.json"
    [ "$gpu" -eq 0 ] || { echo "install.sh: --gpu is for the agent" >&2; exit 2; }
    [ "$tpm" -eq 0 ] || { echo "install.sh: --tpm is for the agent" >&2; exit 2; } ;;
  *) echo "install.sh: --service is agent or gateway, not $service" >&2; exit 2 ;;
esac
# Runs a command, or prints it under --dry-run.
run() {
  if [ "$dry_run" -eq 1 ]; then printf 'would run:'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}

[ -n "$node_bin" ] && [ -x "$node_bin" ] || fail "no node binary (give --node PATH)"
node_major=$("$node_bin" -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || fail "node $node_major is too old: version 20 or later is needed"
# The service runs the compiled code: no TypeScript compiler at start-up.
[ -f "$app_dir/$entry" ] || fail "$app_dir does not hold $entry (run npm run build there, or give --app-dir)"
case "$app_dir$node_bin" in *'#'*|*'&'*|*'\'*) fail "paths must not contain #, & or backslash" ;; esac

unit_dir="$root/etc/systemd/system"
conf_dir="$root/etc/$name"
unit="$unit_dir/$name.service"

if [ -z "$root" ]; then
  [ "$dry_run" -eq 1 ] || [ "$(id -u)" -eq 0 ] || fail "run as root (or use --root DIR / --dry-run)"
  if ! getent group "$user" >/dev/null; then run groupadd --system "$user"; fi
  if ! getent passwd "$user" >/dev/null; then
    run useradd --system --gid "$user" --home-dir "/var/lib/$name" --no-create-home --shell /usr/sbin/nologin "$user"
  fi
  if [ "$gpu" -eq 1 ]; then run usermod --append --groups video "$user"; fi
fi

run install -d -m 0755 "$unit_dir" "$conf_dir"
if [ "$dry_run" -eq 1 ]; then
  echo "would write: $unit (ExecStart: $node_bin $app_dir/$entry start --config /etc/$name/config.json)"
else
  tmp=$(mktemp)
  sed -e "s#@NODE@#$node_bin#g" -e "s#@APP_DIR@#$app_dir#g" "$template" > "$tmp"
  install -m 0644 "$tmp" "$unit"
  rm -f "$tmp"
fi
if [ "$tpm" -eq 1 ]; then
  run install -d -m 0755 "$unit.d"
  run install -m 0644 "$script_dir/tpm.conf" "$unit.d/tpm.conf"
fi
if [ -e "$conf_dir/config.json" ]; then
  echo "keeping existing $conf_dir/config.json"
else
  run install -m 0640 "$example" "$conf_dir/config.json"
  if [ -z "$root" ]; then run chgrp "$user" "$conf_dir/config.json"; fi
  if [ "$service" = agent ]; then
    echo "edit $conf_dir/config.json (deviceId, profile, models, brokerUrl, policyAdminPublicKey) before starting"
  else
    echo "edit $conf_dir/config.json (name, brokerUrl, rpcUrl, registry, anchorPrivateKeyFile) before starting"
  fi
fi

if [ -z "$root" ]; then
  run systemctl daemon-reload
  if [ "$enable" -eq 1 ]; then run systemctl enable --now "$name.service"; fi
fi
if [ "$dry_run" -eq 1 ]; then echo "dry run: nothing was changed"; else echo "installed $unit"; fi
