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
fetch_etcd34() {
	# Debian's etcd-server (3.4), for the functional test against the etcd
	# operators run. Unpacked into bin/, not installed: no service starts.
	dest="$(dirname "$0")/../bin/etcd-3.4"
	[ -x "$dest/usr/bin/etcd" ] || [ -x /usr/bin/etcd ] && return 0
	command -v apt-get >/dev/null 2>&1 || return 0
	tmp=$(mktemp -d)
	if (cd "$tmp" && apt-get download -qq etcd-server >/dev/null 2>&1); then
		mkdir -p "$dest" && dpkg -x "$tmp"/etcd-server_*.deb "$dest"
	fi
	rm -rf "$tmp"
	return 0
}

if [ ${#missing[@]} -eq 0 ]; then
	fetch_etcd34
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
fetch_etcd34
