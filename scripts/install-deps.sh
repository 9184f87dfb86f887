#!/usr/bin/env bash
# Installs the system packages Ocelot's tests and demo need, when missing,
# on Debian (a clean machine included: the package lists are fetched when
# apt-get has none). Without root it only reports what is missing.
#
# Also unpacks Debian's etcd-server (3.4) into bin/etcd-3.4, for the
# functional test against the etcd that operators run, and Debian's
# prometheus package (prometheus and promtool) into bin/prometheus, for the
# tests of the dashboard and alerting rules; no service starts.
set -euo pipefail

# command -> package that provides it
declare -A pkg_for=(
	[ip]=iproute2           # namespaces, links, routes
	[iptables]=iptables     # and ip6tables, iptables-legacy, iptables-nft
	[iptables-legacy]=iptables
	[iptables-nft]=iptables
	[ipset]=ipset
	[nft]=nftables         # tests inspect and tamper with the nftables backend
	[conntrack]=conntrack
	[sysctl]=procps         # the lab's per-namespace sysctls
)

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

missing=()
for cmd in "${!pkg_for[@]}"; do
	have "$cmd" || missing+=("${pkg_for[$cmd]}")
done
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')

updated=0
apt_update() {
	[ "$updated" -eq 1 ] && return 0
	apt-get update -qq
	updated=1
}

if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing system packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
		exit 1
	fi
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt_update
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# unpack PACKAGE DEST BINARY: fetch a Debian package and unpack it into
# DEST (nothing is installed, no service starts) unless BINARY (a path
# under DEST) or the system's copy of it already exists.
unpack() {
	local pkg=$1 dest tmp
	dest="$(dirname "$0")/../bin/$2"
	if [ -x "$dest/$3" ] || [ -x "/$3" ]; then
		return 0
	fi
	command -v apt-get >/dev/null 2>&1 || return 0
	tmp=$(mktemp -d)
	if ! (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1); then
		# A clean machine has no package lists yet.
		if [ "$(id -u)" -eq 0 ]; then
			apt_update || true
		fi
		(cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1) || true
	fi
	if ls "$tmp"/"${pkg}"_*.deb >/dev/null 2>&1; then
		mkdir -p "$dest" && dpkg -x "$tmp"/"${pkg}"_*.deb "$dest"
	else
		echo "warning: could not fetch Debian's $pkg; its tests will skip (or fail under OCELOT_REQUIRE_KERNEL=1)" >&2
	fi
	rm -rf "$tmp"
}
unpack etcd-server etcd-3.4 usr/bin/etcd
unpack prometheus prometheus usr/bin/promtool
