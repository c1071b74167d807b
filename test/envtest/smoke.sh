#!/usr/bin/env bash
# Smoke check of the envtest control plane: starts etcd + kube-apiserver (built by
# build-tools.sh) on free loopback ports in a temp dir, with token auth (an admin
# in system:masters and a user standing for the operator's service account), RBAC
# and a service-account key pair made with openssl; waits up to 60 s for
# GET /readyz with the admin token to answer ok; checks RBAC denies the operator
# user; prints "ok"; stops both and removes the temp dir.
#
# Binaries: $HUB_BROKER_KUBE_APISERVER / $HUB_BROKER_ETCD if both are set, else
# whatever build-tools.sh reports (it builds them, or says "cached").
# Needs: bash, openssl, curl.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {
  echo "smoke: FAILED: $*" >&2
  exit 1
}

for c in openssl curl; do
  command -v "$c" >/dev/null 2>&1 || die "'$c' is needed"
done

if [[ -z ${HUB_BROKER_KUBE_APISERVER:-} || -z ${HUB_BROKER_ETCD:-} ]]; then
  paths=$("$script_dir/build-tools.sh") || die "build-tools.sh failed"
  eval "$paths"
fi
kas=$HUB_BROKER_KUBE_APISERVER
etcd=$HUB_BROKER_ETCD
[[ -x $kas ]] || die "kube-apiserver not found at $kas"
[[ -x $etcd ]] || die "etcd not found at $etcd"

dir=$(mktemp -d "${TMPDIR:-/tmp}/hub-broker-envtest.XXXXXX")
etcd_pid=""
kas_pid=""
cleanup() {
  local rc=$?
  # Stop only what this script started, by pid: kube-apiserver first (its
  # graceful shutdown needs etcd), then etcd; SIGKILL after 10 s.
  for pid in $kas_pid $etcd_pid; do
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if ((rc != 0)); then
    for log in etcd.log kube-apiserver.log; do
      [[ -f $dir/$log ]] && { echo "--- last lines of $log:" >&2; tail -n 25 "$dir/$log" >&2; }
    done
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

# free_port: a random loopback port nothing listens on and not in $taken
# (runs in a subshell, so the caller records what it took)
taken=" "
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    [[ $taken == *" $p "* ]] && continue
    if ! (: </dev/tcp/127.0.0.1/"$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "no free loopback port found"
}
ep=$(free_port)
taken+="$ep "
pp=$(free_port)
taken+="$pp "
ap=$(free_port)

admin_token=$(openssl rand -hex 24)
operator_token=$(openssl rand -hex 24)
# token,user,uid,"group1,group2"
cat >"$dir/tokens.csv" <<EOF
$admin_token,admin,admin-uid,"system:masters"
$operator_token,system:serviceaccount:hub-broker:hub-broker-operator,operator-uid,"system:serviceaccounts,system:serviceaccounts:hub-broker"
EOF
openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null || die "openssl genrsa failed"
openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null || die "openssl rsa -pubout failed"

start=$SECONDS
"$etcd" \
  --name=envtest \
  --data-dir="$dir/etcd" \
  --listen-client-urls="http://127.0.0.1:$ep" \
  --advertise-client-urls="http://127.0.0.1:$ep" \
  --listen-peer-urls="http://127.0.0.1:$pp" \
  --initial-advertise-peer-urls="http://127.0.0.1:$pp" \
  --initial-cluster="envtest=http://127.0.0.1:$pp" \
  --unsafe-no-fsync \
  >"$dir/etcd.log" 2>&1 &
etcd_pid=$!

# Start kube-apiserver once etcd answers, so its log is not full of retries.
until curl -s --noproxy '*' --max-time 2 "http://127.0.0.1:$ep/health" | grep -q '"health":"true"'; do
  kill -0 "$etcd_pid" 2>/dev/null || die "etcd exited (see its log below)"
  ((SECONDS - start < 60)) || die "etcd not healthy within 60 s"
  sleep 0.2
done

"$kas" \
  --etcd-servers="http://127.0.0.1:$ep" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="$ap" \
  --cert-dir="$dir/certs" \
  --token-auth-file="$dir/tokens.csv" \
  --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$dir/sa.pub" \
  --service-account-signing-key-file="$dir/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --disable-admission-plugins=ServiceAccount \
  >"$dir/kube-apiserver.log" 2>&1 &
kas_pid=$!

base=https://127.0.0.1:$ap
# get TOKEN PATH -> "HTTPCODE BODY"
get() {
  curl -ks --noproxy '*' --max-time 5 -o "$dir/body" -w '%{http_code}' \
    -H "Authorization: Bearer $1" "$base$2" || true
}

ready=""
while ((SECONDS - start < 60)); do
  kill -0 "$etcd_pid" 2>/dev/null || die "etcd exited (see its log below)"
  kill -0 "$kas_pid" 2>/dev/null || die "kube-apiserver exited (see its log below)"
  if [[ $(get "$admin_token" /readyz) == 200 && $(<"$dir/body") == ok ]]; then
    ready=1
    break
  fi
  sleep 0.5
done
[[ -n $ready ]] || die "GET /readyz did not answer ok within 60 s (last: $(cat "$dir/body" 2>/dev/null | tail -n 5))"
echo "smoke: /readyz ok after $((SECONDS - start)) s (etcd :$ep, kube-apiserver :$ap)" >&2

code=$(get "$admin_token" /version)
[[ $code == 200 ]] || die "GET /version as admin answered $code"
echo "smoke: server $(grep -o '"gitVersion": *"[^"]*"' "$dir/body")" >&2
code=$(get "$operator_token" /api/v1/namespaces)
[[ $code == 403 ]] || die "RBAC: operator user listing namespaces answered $code, expected 403"
code=$(get "not-a-token" /api/v1/namespaces)
[[ $code == 401 ]] || die "authn: a wrong token answered $code, expected 401"

echo ok
