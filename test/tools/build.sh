#!/usr/bin/env bash
# build.sh compiles the real kube-apiserver, kubectl and etcd that the
# integration tests (test/apiserver) run, into a per-version cache directory:
#
#   ${CROSSWIRE_TOOLS:-/var/cache/crosswire/tools}/kube-v1.37.2-etcd-v3.7.3/
#
# Building from source (instead of downloading release tarballs) keeps the
# tests on the Go module proxy only. The versions come from this directory's
# go.mod; the directory name below must match test/apiserver's default.
#
# Idempotent: a binary that exists and reports its version is not rebuilt.
# Atomic: each binary is built to a temporary file and renamed into place, so
# an interrupted build never leaves a half-written binary behind.
set -euo pipefail

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.3

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${CROSSWIRE_TOOLS:-/var/cache/crosswire/tools}/kube-${KUBE_VERSION}-etcd-${ETCD_VERSION}"

# Fail early if go.mod and this script disagree about versions: the cache
# directory name would then lie about what it holds.
for want in "k8s.io/kubernetes ${KUBE_VERSION}" "go.etcd.io/etcd/server/v3 ${ETCD_VERSION}"; do
	if ! grep -q "^[[:space:]]*${want}\$" "${here}/go.mod"; then
		echo "build.sh: ${here}/go.mod does not require ${want}; update KUBE_VERSION/ETCD_VERSION" >&2
		exit 1
	fi
done

mkdir -p "${dest}"

# The version stamps kube's own build (hack/lib/version.sh) would set; without
# them kube-apiserver reports v0.0.0-master and kubectl warns about skew.
minor="${KUBE_VERSION#v1.}"
minor="${minor%%.*}"
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	kube_ldflags+=" -X ${pkg}.gitVersion=${KUBE_VERSION}"
	kube_ldflags+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
	kube_ldflags+=" -X ${pkg}.gitTreeState=clean"
	kube_ldflags+=" -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done

# runs BINARY: prints its version (kubectl has no --version flag).
runs() {
	case "$(basename "$1")" in
	kubectl | .kubectl.*) "$1" version --client ;;
	*) "$1" --version ;;
	esac 2>&1
}

# build NAME VERSION PACKAGE LDFLAGS [NOTE]
build() {
	local name="$1" version="$2" pkg="$3" ldflags="$4" note="${5:-}"
	local out="${dest}/${name}"
	if [[ -x "${out}" ]] && runs "${out}" >/dev/null; then
		echo "${name} ${version}: up to date (${out})"
		return 0
	fi
	echo "building ${name} ${version}${note:+ (${note})}…"
	local tmp start
	tmp="$(mktemp "${dest}/.${name}.XXXXXX")"
	start=${SECONDS}
	if ! (cd "${here}" && CGO_ENABLED=0 go build -trimpath -ldflags="${ldflags}" -o "${tmp}" "${pkg}"); then
		rm -f "${tmp}"
		echo "build.sh: building ${name} failed" >&2
		return 1
	fi
	chmod 0755 "${tmp}"
	if ! runs "${tmp}" >/dev/null; then
		rm -f "${tmp}"
		echo "build.sh: ${name} was built but does not report its version" >&2
		return 1
	fi
	mv -f "${tmp}" "${out}"
	echo "built ${name} ${version} in $((SECONDS - start))s: $(runs "${out}" | head -n1)"
}

total=${SECONDS}
build etcd "${ETCD_VERSION}" ./etcd "-s -w" "first time on this machine takes ~2 min on 2 cores"
build kube-apiserver "${KUBE_VERSION}" k8s.io/kubernetes/cmd/kube-apiserver "${kube_ldflags}" \
	"first time on this machine takes ~8 min on 2 cores"
build kubectl "${KUBE_VERSION}" k8s.io/kubernetes/cmd/kubectl "${kube_ldflags}" \
	"first time ~3 min more; shares most of the kube-apiserver build"
echo "tools ready in ${dest} ($((SECONDS - total))s)"
