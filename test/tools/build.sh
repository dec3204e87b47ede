#!/usr/bin/env bash
# build.sh compiles, from Go modules, the real Kubernetes tools crosswire's
# tests run into per-version cache directories under
# ${CROSSWIRE_TOOLS:-/var/cache/crosswire/tools}:
#
#   kube-v1.37.2-etcd-v3.7.3/   etcd, kube-apiserver, kubectl (test/apiserver);
#                               kubelet, kube-controller-manager,
#                               kube-scheduler, kube-proxy (real nodes)
#   helm-v3.22.0/               helm (test/chart)
#   wireguard-go-<version>/     wireguard-go (test/bench's reference)
#   containerd-v2.2.9/          containerd, containerd-shim-runc-v2, ctr
#                               (real nodes)
#   registry-v3.1.2/            registry, CNCF distribution (real nodes pull
#                               the image from it)
#
# The stock wireguard-go is built from wggo/go.mod at exactly the
# golang.zx2c4.com/wireguard version (and x/crypto, x/net, x/sys versions) of
# the root go.mod. The real nodes' runc and CNI plugins come from Debian
# (scripts/install-deps.sh), not from here.
#
# Building from source (instead of downloading release tarballs) keeps the
# tests on the Go module proxy only. The versions come from this directory's
# go.mod (kube, etcd) and from one module per tool whose dependencies would
# clash with k8s.io/kubernetes' (helm/, containerd/ and registry/ pin older
# k8s.io or other modules); the directory names above must match the tests'
# defaults.
#
# Cold build times on 2 cores: the notes at the bottom. The real-node
# binaries' (kubelet onwards, ~25 min together) were measured with other
# builds running (load 7-13, under which kube-apiserver took 36 min instead
# of ~8), so expect less on a quiet machine.
#
# Idempotent: a binary that exists and reports its version is not rebuilt.
# Atomic: each binary is built to a temporary file and renamed into place, so
# an interrupted build never leaves a half-written binary behind.
set -euo pipefail

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
HELM_VERSION=v3.22.0
CONTAINERD_VERSION=v2.2.9
REGISTRY_VERSION=v3.1.2

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${CROSSWIRE_TOOLS:-/var/cache/crosswire/tools}"
kube_dest="${root}/kube-${KUBE_VERSION}-etcd-${ETCD_VERSION}"
helm_dest="${root}/helm-${HELM_VERSION}"
containerd_dest="${root}/containerd-${CONTAINERD_VERSION}"
registry_dest="${root}/registry-${REGISTRY_VERSION}"

# Fail early if go.mod and this script disagree about versions: the cache
# directory name would then lie about what it holds.
for want in "k8s.io/kubernetes ${KUBE_VERSION}" "go.etcd.io/etcd/server/v3 ${ETCD_VERSION}"; do
	if ! grep -q "^[[:space:]]*${want}\$" "${here}/go.mod"; then
		echo "build.sh: ${here}/go.mod does not require ${want}; update KUBE_VERSION/ETCD_VERSION" >&2
		exit 1
	fi
done
for want in "helm helm.sh/helm/v3 ${HELM_VERSION} HELM_VERSION" \
	"containerd github.com/containerd/containerd/v2 ${CONTAINERD_VERSION} CONTAINERD_VERSION" \
	"registry github.com/distribution/distribution/v3 ${REGISTRY_VERSION} REGISTRY_VERSION"; do
	read -r dir mod version var <<<"${want}"
	if ! grep -q "^require ${mod} ${version}\$" "${here}/${dir}/go.mod"; then
		echo "build.sh: ${here}/${dir}/go.mod does not require ${mod} ${version}; update ${var}" >&2
		exit 1
	fi
done

# The reference wireguard-go must be the very code crosswire links.
WGGO_VERSION="$(awk '$1 == "golang.zx2c4.com/wireguard" {print $2}' "${here}/../../go.mod")"
if [[ -z "${WGGO_VERSION}" ]]; then
	echo "build.sh: cannot find golang.zx2c4.com/wireguard in ${here}/../../go.mod" >&2
	exit 1
fi
for mod in golang.zx2c4.com/wireguard golang.org/x/crypto golang.org/x/net golang.org/x/sys; do
	want="$(awk -v m="${mod}" '$1 == m {print $2}' "${here}/../../go.mod")"
	got="$(sed -n "s|^[[:space:]]*\(require \)\{0,1\}${mod} \([^ ]*\).*|\2|p" "${here}/wggo/go.mod")"
	if [[ -z "${want}" || "${got}" != "${want}" ]]; then
		echo "build.sh: ${here}/wggo/go.mod requires ${mod} ${got:-(none)}, the root go.mod ${want:-(none)}; make them equal" >&2
		exit 1
	fi
done
wggo_dest="${root}/wireguard-go-${WGGO_VERSION}"

mkdir -p "${kube_dest}" "${helm_dest}" "${wggo_dest}" "${containerd_dest}" "${registry_dest}"

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

# The stamps helm's own Makefile sets: its version, and the Kubernetes version
# `helm template` and `helm lint` assume without a cluster (client-go's minor
# plus 1.x, as the Makefile derives it from go.mod).
helm_kube_minor="$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "${here}/helm/go.mod")"
if [[ -z "${helm_kube_minor}" ]]; then
	echo "build.sh: cannot find k8s.io/client-go in ${here}/helm/go.mod" >&2
	exit 1
fi
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
helm_ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
	helm_ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${helm_kube_minor}"
done

# containerd's own Makefile stamps (its REVISION is a git commit, which a
# module download does not have: left empty). Tags: urfave_cli_no_docs as the
# Makefile sets; btrfs needs cgo and is left out by CGO_ENABLED=0 anyway;
# devmapper and zfs are snapshotters the nodes do not use (they run
# overlayfs), so they are left out too; the shim gets the Makefile's no_grpc
# (it speaks ttrpc only).
containerd_ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION}"
containerd_tags="urfave_cli_no_docs,no_btrfs,no_devmapper,no_zfs"
shim_tags="${containerd_tags},no_grpc"

# distribution's Makefile stamps (revision likewise left empty).
registry_ldflags="-s -w -X github.com/distribution/distribution/v3/version.version=${REGISTRY_VERSION}"
registry_ldflags+=" -X github.com/distribution/distribution/v3/version.mainpkg=github.com/distribution/distribution/v3"

# runs BINARY: prints its version (kubectl has no --version flag, the shim
# parses Go flags).
runs() {
	case "$(basename "$1")" in
	kubectl | .kubectl.*) "$1" version --client ;;
	helm | .helm.*) "$1" version --short ;;
	containerd-shim-runc-v2 | .containerd-shim-runc-v2.*) "$1" -v ;;
	*) "$1" --version ;;
	esac 2>&1
}

# build DEST MODULE NAME VERSION PACKAGE LDFLAGS TAGS [NOTE]: builds PACKAGE
# of the Go module in directory MODULE into DEST/NAME, with CGO off and the
# comma-separated build TAGS (may be empty).
build() {
	local dest="$1" module="$2" name="$3" version="$4" pkg="$5" ldflags="$6" tags="$7" note="${8:-}"
	local out="${dest}/${name}"
	if [[ -x "${out}" ]] && runs "${out}" >/dev/null; then
		echo "${name} ${version}: up to date (${out})"
		return 0
	fi
	echo "building ${name} ${version}${note:+ (${note})}…"
	local tmp start
	tmp="$(mktemp "${dest}/.${name}.XXXXXX")"
	start=${SECONDS}
	if ! (cd "${module}" && CGO_ENABLED=0 go build -trimpath -tags="${tags}" -ldflags="${ldflags}" -o "${tmp}" "${pkg}"); then
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
build "${kube_dest}" "${here}" etcd "${ETCD_VERSION}" ./etcd "-s -w" "" \
	"first time on this machine takes ~2 min on 2 cores"
build "${kube_dest}" "${here}" kube-apiserver "${KUBE_VERSION}" k8s.io/kubernetes/cmd/kube-apiserver "${kube_ldflags}" "" \
	"first time on this machine takes ~8 min on 2 cores"
build "${kube_dest}" "${here}" kubectl "${KUBE_VERSION}" k8s.io/kubernetes/cmd/kubectl "${kube_ldflags}" "" \
	"first time ~3 min more; shares most of the kube-apiserver build"
build "${helm_dest}" "${here}/helm" helm "${HELM_VERSION}" helm.sh/helm/v3/cmd/helm "${helm_ldflags}" "" \
	"first time on this machine takes ~1 min on 2 cores"
build "${wggo_dest}" "${here}/wggo" wireguard-go "${WGGO_VERSION}" golang.zx2c4.com/wireguard "-s -w" "" \
	"the datapath benchmark's reference; ~30 s"
build "${kube_dest}" "${here}" kube-controller-manager "${KUBE_VERSION}" k8s.io/kubernetes/cmd/kube-controller-manager "${kube_ldflags}" "" \
	"first time ~9 min more; shares much of the kube-apiserver build"
build "${kube_dest}" "${here}" kube-scheduler "${KUBE_VERSION}" k8s.io/kubernetes/cmd/kube-scheduler "${kube_ldflags}" "" \
	"~40 s once kube-controller-manager is built"
build "${kube_dest}" "${here}" kube-proxy "${KUBE_VERSION}" k8s.io/kubernetes/cmd/kube-proxy "${kube_ldflags}" "" \
	"~1 min"
build "${kube_dest}" "${here}" kubelet "${KUBE_VERSION}" k8s.io/kubernetes/cmd/kubelet "${kube_ldflags}" "" \
	"~2.5 min"
build "${containerd_dest}" "${here}/containerd" containerd "${CONTAINERD_VERSION}" github.com/containerd/containerd/v2/cmd/containerd "${containerd_ldflags}" "${containerd_tags}" \
	"first time on this machine takes ~5 min on 2 cores"
build "${containerd_dest}" "${here}/containerd" containerd-shim-runc-v2 "${CONTAINERD_VERSION}" github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 "${containerd_ldflags}" "${shim_tags}" \
	"~10 s once containerd is built"
build "${containerd_dest}" "${here}/containerd" ctr "${CONTAINERD_VERSION}" github.com/containerd/containerd/v2/cmd/ctr "${containerd_ldflags}" "${containerd_tags}" \
	"~15 s once containerd is built"
build "${registry_dest}" "${here}/registry" registry "${REGISTRY_VERSION}" github.com/distribution/distribution/v3/cmd/registry "${registry_ldflags}" "" \
	"first time on this machine takes ~6 min on 2 cores"
echo "tools ready in ${kube_dest}, ${helm_dest}, ${wggo_dest}, ${containerd_dest} and ${registry_dest} ($((SECONDS - total))s)"
