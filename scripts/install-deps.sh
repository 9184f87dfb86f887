#!/usr/bin/env bash
# Installs the system packages Ocelot's tests and demo need, when missing.
# Needs root (apt-get); without root it only reports what is missing.
set -euo pipefail

declare -A pkg_for=([iptables]=iptables [ipset]=ipset [ip]=iproute2 [conntrack]=conntrack)
missing=()
for cmd in "${!pkg_for[@]}"; do
	if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ] && ! [ -x "/sbin/$cmd" ]; then
		missing+=("${pkg_for[$cmd]}")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "missing system packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
apt-get install -y -qq --no-install-recommends "${missing[@]}"
