#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use (a real Mosquitto broker, PostgreSQL,
# systemd-analyze for the unit file check, and Go with golang.org/x/mod whose note package checks
# our signed checkpoints, swtpm and tpm2-tools for the TPM identity) when they are missing. Runs before `npm test`.
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v go >/dev/null 2>&1 || need+=(golang-go)
# The gateway's PostgreSQL tier (#14): its tests initdb a throwaway cluster.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
[ -f /usr/share/gocode/src/golang.org/x/mod/sumdb/note/note.go ] || need+=(golang-golang-x-mod-dev)
# A software TPM 2.0 and the standard TPM tools: the TPM identity tests (docs/IDENTITY.md).
command -v tpm2_createprimary >/dev/null 2>&1 || need+=(tpm2-tools)
command -v swtpm >/dev/null 2>&1 || need+=(swtpm)
command -v swtpm_setup >/dev/null 2>&1 || need+=(swtpm-tools)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (run: sudo apt-get install -y ${need[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq "${need[@]}" >&2
