#!/usr/bin/env bash
# Builds the control-plane binaries the operator tests run against
# (kube-apiserver and etcd, envtest style) and helm, from Go modules.
#
# No npm or Debian package ships them and prebuilt downloads are unreachable,
# so they are compiled from the Go module proxy. The pins live in the wrapper
# modules' go.mod/go.sum (committed); the binaries never are:
#   tools/kube/  k8s.io/kubernetes (cmd/kube-apiserver) + go.etcd.io/etcd/server/v3
#                at the version kubernetes itself selects (tools/kube/etcd/main.go)
#   tools/helm/  helm.sh/helm/v3 (cmd/helm), separate module: its dependency
#                graph must not move kube-apiserver's
#   tools/argocd-lua/  (if present) a small local command, built the same way
# To bump kubernetes or helm: see the notes at the end of this file.
#
# Output folder: ${HUB_BROKER_TOOLS_DIR:-<repo root>/.tools} (ignored by git).
# A binary is rebuilt only when its stamp (version, module files, Go version,
# flags) changed; otherwise the script prints "cached". --force rebuilds all.
#
# Progress goes to stderr; stdout gets one NAME=PATH line per binary at the end:
#   HUB_BROKER_KUBE_APISERVER=/abs/path/kube-apiserver
#   HUB_BROKER_ETCD=/abs/path/etcd
#   HUB_BROKER_HELM=/abs/path/helm
#   HUB_BROKER_ARGOCD_LUA=/abs/path/argocd-lua   (only when tools/argocd-lua exists)
# so `eval "$(test/envtest/build-tools.sh)"` exports nothing but sets them.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/../.." && pwd)
mods_dir=$script_dir/tools
tools_dir=${HUB_BROKER_TOOLS_DIR:-$repo_root/.tools}

force=0
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    -h | --help)
      sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "build-tools.sh: unknown argument: $arg (only --force)" >&2
      exit 2
      ;;
  esac
done

log() { echo "build-tools: $*" >&2; }
die() {
  echo "build-tools: ERROR: $*" >&2
  exit 1
}

command -v go >/dev/null 2>&1 ||
  die "'go' not found on PATH (need Go >= 1.24; on this image it is /usr/local/go/bin/go)"

go_version=$(go env GOVERSION) || die "'go env GOVERSION' failed"
case $go_version in
  go1.2[4-9]* | go1.[3-9][0-9]* | go[2-9]*) ;;
  *) die "Go >= 1.24 needed to build the tools, found $go_version" ;;
esac

# Reproducible, self-contained builds: the committed go.sum is authoritative
# (-mod=readonly fails rather than silently changing it), no parent go.work,
# no VCS stamping, static binaries.
export GOWORK=off
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED=0

for f in kube/go.mod kube/go.sum kube/etcd/main.go helm/go.mod helm/go.sum; do
  [[ -f $mods_dir/$f ]] || die "missing $mods_dir/$f (it is committed in the repo)"
done

mkdir -p "$tools_dir" || die "cannot create tools folder $tools_dir"
tools_dir=$(cd "$tools_dir" && pwd)

tmp_files=()
cleanup() { ((${#tmp_files[@]})) && rm -f "${tmp_files[@]}"; return 0; }
trap cleanup EXIT

# mod_version MODDIR MODULE -> version that MODDIR's build list selects
mod_version() {
  local v
  v=$(cd "$mods_dir/$1" && go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$2") ||
    die "cannot resolve $2 in $mods_dir/$1/go.mod (module proxy reachable? go.sum complete?)"
  [[ -n $v ]] || die "$2 has no version in $mods_dir/$1/go.mod"
  echo "$v"
}

# build NAME VERSION MODDIR PACKAGE LDFLAGS
build() {
  local name=$1 version=$2 mod=$3 pkg=$4 ldflags=$5
  local out=$tools_dir/$name stamp=$tools_dir/.$name.stamp key
  key=$(
    {
      echo "$name $version $pkg $go_version $(go env GOOS)/$(go env GOARCH)"
      echo "$ldflags"
      cd "$mods_dir/$mod" && find . -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) |
        LC_ALL=C sort | xargs sha256sum
    } | sha256sum | cut -d' ' -f1
  )
  if ((!force)) && [[ -x $out && -f $stamp && $(<"$stamp") == "$key" ]]; then
    log "$name $version: cached ($out)"
    return 0
  fi
  log "$name $version: building $pkg (module tools/$mod; with a cold Go build cache this takes minutes on 2 cores) ..."
  local tmp=$out.tmp.$$ start=$SECONDS
  tmp_files+=("$tmp")
  if ! (cd "$mods_dir/$mod" && go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp" "$pkg"); then
    die "building $name $version ($pkg in $mods_dir/$mod) failed; see the go output above"
  fi
  mv -f "$tmp" "$out"
  echo "$key" >"$stamp"
  log "$name $version: built in $((SECONDS - start))s -> $out ($(du -h "$out" | cut -f1))"
}

# check NAME EXPECTED CMD... : the binary runs and reports the pinned version
check() {
  local name=$1 want=$2 got
  shift 2
  got=$("$@" 2>&1) || die "$name does not run: '$*' failed: $got"
  [[ $got == *"$want"* ]] || die "$name reports '$got', expected it to contain '$want'"
}

k8s_version=$(mod_version kube k8s.io/kubernetes)          # e.g. v1.34.4
etcd_version=$(mod_version kube go.etcd.io/etcd/server/v3) # the one kubernetes selects
helm_version=$(mod_version helm helm.sh/helm/v3)
helm_k8s_version=$(mod_version helm k8s.io/client-go) # v0.34.x: helm's default KubeVersion

# kube-apiserver: stamp the version the way kubernetes' hack/lib/version.sh does,
# else it reports v0.0.0-master (/version, --version, discovery).
k_mm=${k8s_version#v}
k_major=${k_mm%%.*}
k_minor=${k_mm#*.}
k_minor=${k_minor%%.*}
kube_ldflags=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=$k_major -X $p.gitMinor=$k_minor"
  kube_ldflags+=" -X $p.gitTreeState=clean -X $p.gitCommit="
done

# helm: version, and the default .Capabilities.KubeVersion (otherwise v1.20)
# as helm's Makefile derives it from its client-go version (v0.34.x -> 1.34).
h_minor=${helm_k8s_version#v0.}
h_minor=${h_minor%%.*}
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$helm_version"
helm_ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  helm_ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$h_minor"
done

build kube-apiserver "$k8s_version" kube k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
build etcd "$etcd_version" kube ./etcd ""
build helm "$helm_version" helm helm.sh/helm/v3/cmd/helm "$helm_ldflags"
have_argocd_lua=0
if [[ -f $mods_dir/argocd-lua/go.mod ]]; then
  have_argocd_lua=1
  build argocd-lua local argocd-lua . ""
fi

check kube-apiserver "Kubernetes $k8s_version" "$tools_dir/kube-apiserver" --version
check etcd "etcd Version: ${etcd_version#v}" "$tools_dir/etcd" --version
check helm "$helm_version" "$tools_dir/helm" version --short
if ((have_argocd_lua)); then
  # run = usage error (exit 2) without arguments; anything else means it cannot run
  rc=0
  "$tools_dir/argocd-lua" >/dev/null 2>&1 || rc=$?
  ((rc == 2)) || die "argocd-lua does not run (exit $rc without arguments, expected the usage exit 2)"
fi

extra=""
((have_argocd_lua)) && extra=", argocd-lua"
log "ok: kube-apiserver $k8s_version, etcd $etcd_version, helm $helm_version$extra in $tools_dir"
echo "HUB_BROKER_KUBE_APISERVER=$tools_dir/kube-apiserver"
echo "HUB_BROKER_ETCD=$tools_dir/etcd"
echo "HUB_BROKER_HELM=$tools_dir/helm"
if ((have_argocd_lua)); then echo "HUB_BROKER_ARGOCD_LUA=$tools_dir/argocd-lua"; fi

# Bumping kubernetes (tools/kube): K=1.34.x; in tools/kube run
#   go mod edit -require=k8s.io/kubernetes@v$K
#   for each module k8s.io/kubernetes@v$K's go.mod requires at v0.0.0 (its staging
#   modules): go mod edit -replace=$m=$m@v0.${K#1.}
#   go get -tool k8s.io/kubernetes/cmd/kube-apiserver@v$K && go mod tidy
# etcd follows: tidy keeps go.etcd.io/etcd/server/v3 at what kubernetes selects.
# Bumping helm (tools/helm): go get -tool helm.sh/helm/v3/cmd/helm@vX && go mod tidy
