#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Integration tests of the registry client (src/registry) and `pinlet resolve` against
# real docker-registry and a misbehaving fake registry, all on 127.0.0.1 with free ports,
# in a private temporary directory; every process started here is stopped by PID on exit.
#
#   run.sh plain|tls|basic|bearer|fake
#
# Needs (from ctest's environment): PINLET_BIN, REGISTRY_PROBE, REGISTRY_TOKEN_SERVER,
# REGISTRY_FAKE. Uses docker-registry, skopeo, openssl, curl, jq.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/images.sh
. "$here/../lib/images.sh"
: "${PINLET_BIN:?}" "${REGISTRY_PROBE:?}" "${REGISTRY_TOKEN_SERVER:?}" "${REGISTRY_FAKE:?}"
for tool in docker-registry skopeo openssl curl jq ss; do
	command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed" >&2; exit 1; }
done

work=$(mktemp -d /tmp/pinlet-regtest-XXXXXX)
pids=()
failures=0
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# A port no socket uses (registries cannot bind port 0 and report it back). Below the
# kernel's ephemeral range (32768+), so outgoing connections do not take it meanwhile.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		ss -Htan "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}

wait_port() {
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

wait_file() {
	for _ in $(seq 200); do
		[ -s "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# start_registry NAME [HTTP_EXTRA [TOP_EXTRA]]: docker-registry on 127.0.0.1:$rport (a free
# port; another is tried if someone takes it first).
start_registry() {
	local d=$work/$1 pid
	mkdir -p "$d"
	for _ in 1 2 3 4 5; do
		rport=$(free_port)
		cat >"$d/config.yml" <<EOC
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $d/data}, delete: {enabled: true}}
http: {addr: "127.0.0.1:$rport"${2:-}}
${3:-}
EOC
		docker-registry serve "$d/config.yml" >"$d/log" 2>&1 &
		pid=$!
		pids+=("$pid")
		# the port answering is not enough if someone else took it: the registry must
		# still be alive a moment later (a failed bind ends it at once)
		if wait_port "$rport" && sleep 0.2 && kill -0 "$pid" 2>/dev/null; then
			return 0
		fi
		grep -q "address already in use" "$d/log" || break
	done
	cat "$d/log" >&2
	echo "FAIL: registry $1 did not start" >&2
	exit 1
}

# start_fake NAME [fake_registry args...]: sets $fport (not in a subshell: the PID must
# reach the cleanup list).
start_fake() {
	local name=$1
	shift
	"$REGISTRY_FAKE" --port-file "$work/$name.port" "$@" >"$work/$name.log" 2>&1 &
	pids+=($!)
	wait_file "$work/$name.port" || { echo "FAIL: fake $name did not start" >&2; exit 1; }
	fport=$(cat "$work/$name.port")
}

# Test PKI: a CA, a server certificate for 127.0.0.1, a client certificate and the token
# signing certificate, all issued by the CA.
make_pki() {
	local p=$work/pki
	mkdir -p "$p" "$work/certdir"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$p/ca.key" -out "$p/ca.crt" \
		-subj /CN=pinlet-test-ca -addext basicConstraints=critical,CA:true \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null || exit 1
	leaf server 127.0.0.1 "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"
	leaf client pinlet-client "extendedKeyUsage=clientAuth"
	leaf signer pinlet-token-signer "keyUsage=critical,digitalSignature"
	cp "$p/ca.crt" "$work/certdir/ca.crt" # skopeo's --dest-cert-dir: the CA alone
}
leaf() {
	local p=$work/pki
	openssl req -newkey rsa:2048 -nodes -keyout "$p/$1.key" -out "$p/$1.csr" -subj "/CN=$2" \
		2>/dev/null || exit 1
	printf "$3\n" >"$p/$1.ext"
	openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
		-days 2 -out "$p/$1.crt" -extfile "$p/$1.ext" 2>/dev/null || exit 1
}

# run WANT_RC LABEL CMD...: runs CMD, keeps $out and $err, checks the exit code.
run() {
	local want=$1 label=$2
	shift 2
	out=$("$@" 2>"$work/stderr")
	rc=$?
	err=$(cat "$work/stderr")
	if [ "$rc" -eq "$want" ]; then
		pass "$label"
	else
		fail "$label: exit $rc, want $want
  stdout: $out
  stderr: $err"
	fi
}

expect_match() {
	if [[ $2 =~ $3 ]]; then pass "$1"; else fail "$1: '$2' does not match /$3/"; fi
}

expect_no_match() {
	if [[ $2 =~ $3 ]]; then fail "$1: '$2' matches /$3/"; else pass "$1"; fi
}

stat_of() { # stat_of NAME TEXT: the value of NAME=... in a probe stats line
	sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2" | tail -1
}

pinlet_config() { # pinlet_config FILE REGISTRIES_YAML [DOCKER_CONFIG]
	cat >"$1" <<EOC
log: {level: error}
resolver: {timeout: 10s, connect_timeout: 3s}
credentials: {docker_config: [${3:-$work/no-docker-config.json}]}
registries:
$2
EOC
}

images_built=0
build_images() {
	[ $images_built -eq 1 ] && return
	build_oci_image "$work/img-app" tiny/app:v1 "app one" || exit 1
	build_oci_image "$work/img-app2" tiny/app:v2 "app two" || exit 1
	build_oci_index "$work/img-multi" tiny/multi:v1 multi || exit 1
	images_built=1
}

# ---------------------------------------------------------------------------------------
case_plain() {
	local port down reg cfg=$work/plain.yaml d_app d_docker d_multi
	start_registry plain
	port=$rport
	reg=127.0.0.1:$port
	build_images
	push_image "$work/img-app" "$reg" tiny/app:v1 || fail "push app"
	push_image "$work/img-app2" "$reg" tiny/app:v2 || fail "push app v2"
	push_image "$work/img-app" "$reg" tiny/docker:v1 --format v2s2 || fail "push docker"
	push_image "$work/img-multi" "$reg" tiny/multi:v1 || fail "push multi"
	d_app=$(registry_digest "$reg" tiny/app:v1)
	d_docker=$(registry_digest "$reg" tiny/docker:v1)
	d_multi=$(registry_digest "$reg" tiny/multi:v1)
	[ "$d_app" = "$(layout_digest "$work/img-app")" ] || fail "skopeo kept the OCI digest"
	[ "$d_multi" = "$(layout_digest "$work/img-multi")" ] || fail "skopeo kept the index digest"

	pinlet_config "$cfg" "  $reg: {insecure: true}"
	run 0 "plain: OCI image" "$PINLET_BIN" resolve --config "$cfg" "$reg/tiny/app:v1"
	[ "$out" = "$reg/tiny/app:v1	$reg/tiny/app@$d_app" ] || fail "plain: OCI output '$out'"
	run 0 "plain: Docker schema2 image" "$PINLET_BIN" resolve --config "$cfg" "$reg/tiny/docker:v1"
	[ "$out" = "$reg/tiny/docker:v1	$reg/tiny/docker@$d_docker" ] || fail "plain: schema2 output '$out'"
	run 0 "plain: multi-arch index" "$PINLET_BIN" resolve --config "$cfg" "$reg/tiny/multi:v1"
	[ "$out" = "$reg/tiny/multi:v1	$reg/tiny/multi@$d_multi" ] || fail "plain: index output '$out'"
	run 0 "plain: several refs" "$PINLET_BIN" resolve --config "$cfg" "$reg/tiny/app:v1" "$reg/tiny/app:v2"
	[ "$(wc -l <<<"$out")" -eq 2 ] || fail "plain: two lines expected: $out"

	run 0 "plain: probe OCI media type and size" "$REGISTRY_PROBE" --config "$cfg" "$reg/tiny/app:v1"
	expect_match "plain: OCI manifest media type" "$out" "^ok $d_app application/vnd.oci.image.manifest.v1\+json [1-9][0-9]*"
	run 0 "plain: probe index media type" "$REGISTRY_PROBE" --config "$cfg" "$reg/tiny/multi:v1"
	expect_match "plain: index media type" "$out" "^ok $d_multi application/vnd.oci.image.index.v1\+json "
	run 0 "plain: probe schema2 media type" "$REGISTRY_PROBE" --config "$cfg" "$reg/tiny/docker:v1"
	expect_match "plain: schema2 media type" "$out" "^ok $d_docker application/vnd.docker.distribution.manifest.v2\+json "

	run 3 "plain: unknown tag -> not found" "$PINLET_BIN" resolve --config "$cfg" "$reg/tiny/app:v9"
	expect_match "plain: not-found message" "$err" "$reg/tiny/app:v9: registry $reg: manifest unknown \(HTTP 404\)"
	run 3 "plain: unknown repository -> not found" "$PINLET_BIN" resolve --config "$cfg" "$reg/tiny/nothing:v1"
	run 3 "plain: exit code of first failure" "$PINLET_BIN" resolve --config "$cfg" "$reg/tiny/app:v9" "$reg/tiny/app:v1"
	expect_match "plain: later refs still resolved" "$out" "tiny/app@$d_app"

	# Not marked insecure: pinlet speaks https only, and this registry speaks http.
	pinlet_config "$work/strict.yaml" "  {}"
	run 6 "plain: http registry not marked insecure -> TLS error" "$PINLET_BIN" resolve --config "$work/strict.yaml" "$reg/tiny/app:v1"

	down=$(free_port)
	pinlet_config "$work/down.yaml" "  127.0.0.1:$down: {insecure: true}"
	run 5 "plain: registry down -> unavailable" "$PINLET_BIN" resolve --config "$work/down.yaml" "127.0.0.1:$down/tiny/app:v1"
	expect_match "plain: unavailable message" "$err" "127.0.0.1:$down/tiny/app:v1: registry 127.0.0.1:$down: "

	run 0 "plain: 8 threads x 4 resolutions" "$REGISTRY_PROBE" --config "$cfg" --threads 8 --repeat 4 "$reg/tiny/multi:v1"
	expect_match "plain: concurrent results agree" "$out" "^ok $d_multi "
	[ "$(stat_of manifest "$out")" = 32 ] || fail "plain: 32 HEADs expected: $out"

	# Already pinned: printed as is, without asking any registry (this one is down).
	run 0 "plain: digest reference needs no registry" "$PINLET_BIN" resolve --config "$work/down.yaml" "127.0.0.1:$down/tiny/app@$d_app"
	[ "$out" = "127.0.0.1:$down/tiny/app@$d_app	127.0.0.1:$down/tiny/app@$d_app" ] || fail "plain: digest output '$out'"
	run 2 "plain: invalid reference -> usage" "$PINLET_BIN" resolve --config "$cfg" "$reg/Tiny/App:v1"

	run 0 "plain: --help" "$PINLET_BIN" resolve --help
	run 2 "plain: no REF -> usage" "$PINLET_BIN" resolve --config "$cfg"
}

# ---------------------------------------------------------------------------------------
case_tls() {
	local port mport reg mreg cfg=$work/tls.yaml p=$work/pki d_app
	make_pki
	start_registry tls ", tls: {certificate: $p/server.crt, key: $p/server.key}"
	port=$rport
	reg=127.0.0.1:$port
	build_images
	push_image "$work/img-app" "$reg" tiny/app:v1 --dest-cert-dir "$work/certdir" || fail "push tls"
	d_app=$(registry_digest "$reg" tiny/app:v1 --cert-dir "$work/certdir")

	pinlet_config "$cfg" "  $reg: {ca_file: $p/ca.crt}"
	run 0 "tls: per-registry ca_file" "$PINLET_BIN" resolve --config "$cfg" "$reg/tiny/app:v1"
	[ "$out" = "$reg/tiny/app:v1	$reg/tiny/app@$d_app" ] || fail "tls: output '$out'"
	pinlet_config "$work/noca.yaml" "  {}"
	run 6 "tls: unknown CA -> TLS error" "$PINLET_BIN" resolve --config "$work/noca.yaml" "$reg/tiny/app:v1"
	expect_match "tls: TLS message names image and registry" "$err" "$reg/tiny/app:v1: registry $reg: .*TLS"
	pinlet_config "$work/skip.yaml" "  $reg: {skip_verify: true}"
	run 0 "tls: skip_verify" "$PINLET_BIN" resolve --config "$work/skip.yaml" "$reg/tiny/app:v1"
	pinlet_config "$work/wronghost.yaml" "  localhost:$port: {ca_file: $p/ca.crt}"
	run 6 "tls: ca_file of another host not used" "$PINLET_BIN" resolve --config "$work/wronghost.yaml" "$reg/tiny/app:v1"

	# Client certificates: the registry demands one signed by the CA.
	start_registry mtls ", tls: {certificate: $p/server.crt, key: $p/server.key, clientcas: [$p/ca.crt]}"
	mport=$rport
	mreg=127.0.0.1:$mport
	mkdir -p "$work/mcertdir"
	cp "$p/ca.crt" "$work/mcertdir/ca.crt"
	cp "$p/client.crt" "$work/mcertdir/client.cert"
	cp "$p/client.key" "$work/mcertdir/client.key"
	push_image "$work/img-app" "$mreg" tiny/app:v1 --dest-cert-dir "$work/mcertdir" || fail "push mtls"
	pinlet_config "$work/mtls.yaml" "  $mreg: {ca_file: $p/ca.crt, cert_file: $p/client.crt, key_file: $p/client.key}"
	run 0 "tls: client certificate" "$PINLET_BIN" resolve --config "$work/mtls.yaml" "$mreg/tiny/app:v1"
	[ "$out" = "$mreg/tiny/app:v1	$mreg/tiny/app@$d_app" ] || fail "mtls: output '$out'"
	pinlet_config "$work/mtls-none.yaml" "  $mreg: {ca_file: $p/ca.crt}"
	"$PINLET_BIN" resolve --config "$work/mtls-none.yaml" "$mreg/tiny/app:v1" >/dev/null 2>&1
	rc=$?
	if [ $rc -eq 5 ] || [ $rc -eq 6 ]; then pass "tls: no client certificate refused ($rc)"; else fail "tls: no client cert gave $rc"; fi
	pinlet_config "$work/badfile.yaml" "  $reg: {ca_file: $work/missing.crt}"
	run 2 "tls: unreadable ca_file is a configuration error" "$PINLET_BIN" resolve --config "$work/badfile.yaml" "$reg/tiny/app:v1"
}

# ---------------------------------------------------------------------------------------
case_basic() {
	local port reg cfg=$work/basic.yaml p=$work/pki d_app b64
	make_pki
	htpasswd -Bbn alice s3cret >"$work/htpasswd" || exit 1
	start_registry basic ", tls: {certificate: $p/server.crt, key: $p/server.key}" \
		"auth: {htpasswd: {realm: pinlet-test, path: $work/htpasswd}}"
	port=$rport
	reg=127.0.0.1:$port
	build_images
	push_image "$work/img-app" "$reg" tiny/app:v1 --dest-cert-dir "$work/certdir" --dest-creds alice:s3cret || fail "push basic"
	d_app=$(registry_digest "$reg" tiny/app:v1 --cert-dir "$work/certdir" --creds alice:s3cret)

	pinlet_config "$cfg" "  $reg: {ca_file: $p/ca.crt}"
	run 0 "basic: --username/--password-stdin" "$PINLET_BIN" resolve --config "$cfg" --username alice --password-stdin "$reg/tiny/app:v1" <<<"s3cret"
	[ "$out" = "$reg/tiny/app:v1	$reg/tiny/app@$d_app" ] || fail "basic: output '$out'"
	run 4 "basic: wrong password -> unauthorized" "$PINLET_BIN" resolve --config "$cfg" --username alice --password-stdin "$reg/tiny/app:v1" <<<"wrong"
	expect_match "basic: unauthorized message" "$err" "$reg/tiny/app:v1: registry $reg: .*401"
	expect_no_match "basic: no password in message" "$err" "wrong|s3cret"
	run 4 "basic: no credentials -> unauthorized" "$PINLET_BIN" resolve --config "$cfg" "$reg/tiny/app:v1"

	b64=$(printf alice:s3cret | base64)
	printf '{"auths":{"%s":{"auth":"%s"}}}' "$reg" "$b64" >"$work/dockercfg.json"
	pinlet_config "$work/dc.yaml" "  $reg: {ca_file: $p/ca.crt}" "$work/missing.json, $work/dockercfg.json"
	run 0 "basic: docker config auth (second file)" "$PINLET_BIN" resolve --config "$work/dc.yaml" "$reg/tiny/app:v1"
	printf '{"auths":{"https://%s/v2/":{"username":"alice","password":"s3cret"}}}' "$reg" >"$work/dockercfg2.json"
	pinlet_config "$work/dc2.yaml" "  $reg: {ca_file: $p/ca.crt}" "$work/dockercfg2.json"
	run 0 "basic: docker config URL key with username/password" "$PINLET_BIN" resolve --config "$work/dc2.yaml" "$reg/tiny/app:v1"
	printf '{"auths":{"other.example:5000":{"auth":"%s"}}}' "$b64" >"$work/dockercfg3.json"
	pinlet_config "$work/dc3.yaml" "  $reg: {ca_file: $p/ca.crt}" "$work/dockercfg3.json"
	run 4 "basic: docker config for another host not used" "$PINLET_BIN" resolve --config "$work/dc3.yaml" "$reg/tiny/app:v1"

	run 0 "basic: AuthConfig auth field" "$REGISTRY_PROBE" --config "$cfg" --auth "$b64" "$reg/tiny/app:v1"
	run 4 "basic: AuthConfig for another server ignored" "$REGISTRY_PROBE" --config "$cfg" --server-address other.example --username alice --password s3cret "$reg/tiny/app:v1"
	run 0 "basic: AuthConfig beats docker config" "$REGISTRY_PROBE" --config "$work/dc3.yaml" --server-address "https://$reg" --username alice --password s3cret "$reg/tiny/app:v1"
	run 0 "basic: three resolutions" "$REGISTRY_PROBE" --config "$cfg" --repeat 3 --username alice --password s3cret "$reg/tiny/app:v1"
	# first: HEAD 401 + HEAD; then Basic is sent up front: one HEAD each
	[ "$(stat_of manifest "$out")" = 4 ] || fail "basic: 4 manifest requests expected: $out"
}

# ---------------------------------------------------------------------------------------
case_bearer() {
	local port tport reg sreg hreg cfg=$work/bearer.yaml p=$work/pki d_app d_pub tok count
	make_pki
	"$REGISTRY_TOKEN_SERVER" --port-file "$work/token.port" --key "$p/signer.key" \
		--cert "$p/signer.crt" --issuer pinlet-test-issuer --service pinlet-test \
		--user alice:s3cret --refresh-token refresh-123 --public tiny/public \
		--tls-cert "$p/server.crt" --tls-key "$p/server.key" >"$work/token.log" 2>&1 &
	pids+=($!)
	wait_file "$work/token.port" || { echo "FAIL: token server did not start" >&2; exit 1; }
	tport=$(cat "$work/token.port")
	start_registry bearer ", tls: {certificate: $p/server.crt, key: $p/server.key}" \
		"auth: {token: {realm: \"https://127.0.0.1:$tport/token\", service: pinlet-test, issuer: pinlet-test-issuer, rootcertbundle: $p/ca.crt}}"
	port=$rport
	reg=127.0.0.1:$port
	build_images
	push_image "$work/img-app" "$reg" tiny/app:v1 --dest-cert-dir "$work/certdir" --dest-creds alice:s3cret || fail "push bearer"
	push_image "$work/img-multi" "$reg" tiny/public:v1 --dest-cert-dir "$work/certdir" --dest-creds alice:s3cret || fail "push public"
	d_app=$(registry_digest "$reg" tiny/app:v1 --cert-dir "$work/certdir" --creds alice:s3cret)
	d_pub=$(registry_digest "$reg" tiny/public:v1 --cert-dir "$work/certdir")
	token_count() { curl -sf --cacert "$p/ca.crt" "https://127.0.0.1:$tport/count"; }

	pinlet_config "$cfg" "  $reg: {ca_file: $p/ca.crt}"
	run 0 "bearer: user/password" "$PINLET_BIN" resolve --config "$cfg" --username alice --password-stdin "$reg/tiny/app:v1" <<<"s3cret"
	[ "$out" = "$reg/tiny/app:v1	$reg/tiny/app@$d_app" ] || fail "bearer: output '$out'"

	count=$(token_count)
	run 0 "bearer: three resolutions, one client" "$REGISTRY_PROBE" --config "$cfg" --repeat 3 --username alice --password s3cret "$reg/tiny/app:v1"
	[ "$(stat_of token "$out")" = 1 ] || fail "bearer: one token request expected: $out"
	[ "$(stat_of manifest "$out")" = 4 ] || fail "bearer: 4 manifest requests expected (401, then 3 with the cached token): $out"
	[ "$(token_count)" -eq $((count + 1)) ] || fail "bearer: token server saw $(token_count), want $((count + 1))"

	run 4 "bearer: wrong password -> unauthorized" "$PINLET_BIN" resolve --config "$cfg" --username alice --password-stdin "$reg/tiny/app:v1" <<<"nope"
	expect_match "bearer: unauthorized message" "$err" "$reg/tiny/app:v1: registry $reg: token server: .*401"
	expect_no_match "bearer: no secret in message" "$err" "nope|s3cret"
	run 0 "bearer: anonymous pull of a public repository" "$PINLET_BIN" resolve --config "$cfg" "$reg/tiny/public:v1"
	[ "$out" = "$reg/tiny/public:v1	$reg/tiny/public@$d_pub" ] || fail "bearer: public output '$out'"
	run 4 "bearer: anonymous pull of a private repository" "$PINLET_BIN" resolve --config "$cfg" "$reg/tiny/app:v1"
	run 3 "bearer: unknown tag -> not found" "$PINLET_BIN" resolve --config "$cfg" --username alice --password-stdin "$reg/tiny/app:nope" <<<"s3cret"

	run 0 "bearer: identity token (OAuth2 refresh_token POST)" "$REGISTRY_PROBE" --config "$cfg" --identity-token refresh-123 "$reg/tiny/app:v1"
	expect_match "bearer: identity token digest" "$out" "^ok $d_app "
	run 4 "bearer: bad identity token" "$REGISTRY_PROBE" --config "$cfg" --identity-token wrong "$reg/tiny/app:v1"

	tok=$(curl -sf --cacert "$p/ca.crt" -u alice:s3cret "https://127.0.0.1:$tport/token?service=pinlet-test&scope=repository:tiny/app:pull" | jq -r .token)
	count=$(token_count)
	run 0 "bearer: registry token used as is" "$REGISTRY_PROBE" --config "$cfg" --registry-token "$tok" --repeat 2 "$reg/tiny/app:v1"
	[ "$(stat_of token "$out")" = 0 ] || fail "bearer: registry token needs no token request: $out"
	[ "$(token_count)" -eq "$count" ] || fail "bearer: token server contacted with a registry token"

	printf '{"auths":{"%s":{"identitytoken":"refresh-123"}}}' "$reg" >"$work/dockercfg.json"
	pinlet_config "$work/dc.yaml" "  $reg: {ca_file: $p/ca.crt}" "$work/dockercfg.json"
	run 0 "bearer: identitytoken from docker config" "$PINLET_BIN" resolve --config "$work/dc.yaml" "$reg/tiny/app:v1"

	# A token that expires: lifetime 2 s, so the cache keeps it for 1 s (half, as the
	# 10 s margin does not fit); a resolution 1.5 s later fetches a new one.
	"$REGISTRY_TOKEN_SERVER" --port-file "$work/token2.port" --key "$p/signer.key" \
		--cert "$p/signer.crt" --issuer pinlet-test-issuer --service pinlet-test \
		--user alice:s3cret --expires-in 2 \
		--tls-cert "$p/server.crt" --tls-key "$p/server.key" >"$work/token2.log" 2>&1 &
	pids+=($!)
	wait_file "$work/token2.port" || { echo "FAIL: token server 2 did not start" >&2; exit 1; }
	start_registry shortlived ", tls: {certificate: $p/server.crt, key: $p/server.key}" \
		"auth: {token: {realm: \"https://127.0.0.1:$(cat "$work/token2.port")/token\", service: pinlet-test, issuer: pinlet-test-issuer, rootcertbundle: $p/ca.crt}}"
	sreg=127.0.0.1:$rport
	push_image "$work/img-app" "$sreg" tiny/app:v1 --dest-cert-dir "$work/certdir" --dest-creds alice:s3cret || fail "push shortlived"
	pinlet_config "$work/short.yaml" "  $sreg: {ca_file: $p/ca.crt}"
	run 0 "bearer: two resolutions within the token's life" "$REGISTRY_PROBE" --config "$work/short.yaml" --repeat 2 --username alice --password s3cret "$sreg/tiny/app:v1"
	[ "$(stat_of token "$out")" = 1 ] || fail "bearer: one token for two quick resolutions: $out"
	run 0 "bearer: a resolution after the token expired" "$REGISTRY_PROBE" --config "$work/short.yaml" --repeat 2 --pause-ms 1500 --username alice --password s3cret "$sreg/tiny/app:v1"
	[ "$(stat_of token "$out")" = 2 ] || fail "bearer: expired token fetched again: $out"

	# A realm over plain http for an https registry: refused before any credential goes.
	"$REGISTRY_TOKEN_SERVER" --port-file "$work/token3.port" --key "$p/signer.key" \
		--cert "$p/signer.crt" --issuer pinlet-test-issuer --service pinlet-test \
		--user alice:s3cret >"$work/token3.log" 2>&1 &
	pids+=($!)
	wait_file "$work/token3.port" || { echo "FAIL: token server 3 did not start" >&2; exit 1; }
	start_registry httprealm ", tls: {certificate: $p/server.crt, key: $p/server.key}" \
		"auth: {token: {realm: \"http://127.0.0.1:$(cat "$work/token3.port")/token\", service: pinlet-test, issuer: pinlet-test-issuer, rootcertbundle: $p/ca.crt}}"
	hreg=127.0.0.1:$rport
	pinlet_config "$work/httprealm.yaml" "  $hreg: {ca_file: $p/ca.crt}"
	run 6 "bearer: http realm for an https registry refused" "$PINLET_BIN" resolve --config "$work/httprealm.yaml" --username alice --password-stdin "$hreg/tiny/app:v1" <<<"s3cret"
	expect_match "bearer: http realm message" "$err" "$hreg/tiny/app:v1: registry $hreg: .*not https"
	[ "$(curl -sf "http://127.0.0.1:$(cat "$work/token3.port")/count")" = 0 ] || fail "bearer: the http realm was contacted"

	run 0 "bearer: 8 threads x 3" "$REGISTRY_PROBE" --config "$cfg" --threads 8 --repeat 3 --username alice --password s3cret "$reg/tiny/app:v1"
	expect_match "bearer: concurrent digest" "$out" "^ok $d_app "
	[ "$(stat_of token "$out")" -le 8 ] || fail "bearer: at most one token request per thread: $out"
}

# ---------------------------------------------------------------------------------------
fake_cfg() { # fake_cfg PORT...: a config marking these fake registries insecure
	local f=$work/fake-$1.yaml regs="" port
	for port in "$@"; do regs="$regs  127.0.0.1:$port: {insecure: true}
"; done
	pinlet_config "$f" "$regs"
	echo "$f"
}

case_fake() {
	local port port2 cfg digest stats t0 t1 elapsed
	start_fake ok --mode ok; port=$fport
	cfg=$(fake_cfg "$port")
	digest=$(curl -sf "http://127.0.0.1:$port/stats" | sed -n 's/.*manifest_digest=\([^ ]*\).*/\1/p')
	run 0 "fake: HEAD with digest" "$REGISTRY_PROBE" --config "$cfg" --repeat 5 "127.0.0.1:$port/x/y:1"
	expect_match "fake: digest" "$out" "^ok $digest "
	stats=$(curl -sf "http://127.0.0.1:$port/stats")
	# connections: the two curl /stats calls and whatever the probe opened
	expect_match "fake: 5 resolutions over one connection" "$stats" "connections=3 requests=5 "

	start_fake head405 --mode head405; port=$fport
	cfg=$(fake_cfg "$port")
	run 0 "fake: HEAD refused (405) -> GET, digest checked" "$REGISTRY_PROBE" --config "$cfg" "127.0.0.1:$port/x/y:1"
	expect_match "fake: 405 fallback digest and size" "$out" "^ok $digest application/vnd.oci.image.manifest.v1\+json [1-9]"
	[ "$(stat_of manifest "$out")" = 2 ] || fail "fake: HEAD + GET expected: $out"

	start_fake nodigest --mode nodigest; port=$fport
	cfg=$(fake_cfg "$port")
	run 0 "fake: no digest header -> GET and hash" "$REGISTRY_PROBE" --config "$cfg" "127.0.0.1:$port/x/y:1"
	expect_match "fake: computed digest" "$out" "^ok $digest "

	start_fake lie --mode lie; port=$fport
	cfg=$(fake_cfg "$port")
	run 6 "fake: lying digest -> protocol error" "$PINLET_BIN" resolve --config "$cfg" "127.0.0.1:$port/x/y:1"
	expect_match "fake: mismatch message" "$err" "127.0.0.1:$port/x/y:1: registry 127.0.0.1:$port: .*digest mismatch"

	start_fake baddigest --mode baddigest; port=$fport
	cfg=$(fake_cfg "$port")
	run 6 "fake: malformed digest -> protocol error" "$PINLET_BIN" resolve --config "$cfg" "127.0.0.1:$port/x/y:1"

	start_fake bigmanifest --mode bigmanifest; port=$fport
	cfg=$(fake_cfg "$port")
	run 6 "fake: 5 MiB manifest -> rejected" "$PINLET_BIN" resolve --config "$cfg" "127.0.0.1:$port/x/y:1"
	expect_match "fake: oversized body message" "$err" "exceeds 4194304 bytes"

	start_fake bigheaders --mode bigheaders; port=$fport
	cfg=$(fake_cfg "$port")
	run 6 "fake: 100 KiB of headers -> rejected" "$PINLET_BIN" resolve --config "$cfg" "127.0.0.1:$port/x/y:1"
	expect_match "fake: oversized headers message" "$err" "headers exceed 65536 bytes"

	# One header line past curl's own limit: curl 7.88 fails with "out of memory"; pinlet
	# reports the peer's protocol error and names the registry.
	start_fake longheader --mode longheader; port=$fport
	cfg=$(fake_cfg "$port")
	run 6 "fake: 150 KiB header line -> protocol error" "$PINLET_BIN" resolve --config "$cfg" "127.0.0.1:$port/x/y:1"
	expect_match "fake: long header line message" "$err" "registry 127.0.0.1:$port: .*127.0.0.1:$port: a response header line exceeds"
	case $err in *memory*) fail "fake: long header line reported as out of memory: $err" ;; esac

	# Redirect to another origin: followed, and the Basic credentials stay behind.
	start_fake target --mode ok; port2=$fport
	start_fake redirect --mode redirect --redirect-to "http://127.0.0.1:$port2" --require-basic alice:s3cret; port=$fport
	cfg=$(fake_cfg "$port" "$port2")
	run 0 "fake: redirect followed" "$REGISTRY_PROBE" --config "$cfg" --username alice --password s3cret "127.0.0.1:$port/x/y:1"
	expect_match "fake: redirect digest" "$out" "^ok $digest "
	stats=$(curl -sf "http://127.0.0.1:$port2/stats")
	expect_match "fake: redirect target saw requests" "$stats" "requests=[1-9]"
	expect_match "fake: no credentials to the other host" "$stats" "authorization=0 "
	stats=$(curl -sf "http://127.0.0.1:$port/stats")
	expect_match "fake: credentials did go to the registry" "$stats" "authorization=[1-9]"

	start_fake loop --mode loop; port=$fport
	cfg=$(fake_cfg "$port")
	run 6 "fake: redirect loop -> protocol error" "$PINLET_BIN" resolve --config "$cfg" "127.0.0.1:$port/x/y:1"
	expect_match "fake: loop message" "$err" "more than 5 redirects"

	start_fake s500 --mode status:503; port=$fport
	cfg=$(fake_cfg "$port")
	run 5 "fake: 503 -> unavailable" "$PINLET_BIN" resolve --config "$cfg" "127.0.0.1:$port/x/y:1"
	start_fake s429 --mode status:429; port=$fport
	cfg=$(fake_cfg "$port")
	run 5 "fake: 429 -> unavailable" "$PINLET_BIN" resolve --config "$cfg" "127.0.0.1:$port/x/y:1"
	start_fake s404 --mode status:404; port=$fport
	cfg=$(fake_cfg "$port")
	run 3 "fake: 404 -> not found" "$PINLET_BIN" resolve --config "$cfg" "127.0.0.1:$port/x/y:1"
	start_fake s401 --mode ok --require-basic alice:s3cret; port=$fport
	cfg=$(fake_cfg "$port")
	run 4 "fake: Basic challenge, wrong password" "$REGISTRY_PROBE" --config "$cfg" --username alice --password bad "127.0.0.1:$port/x/y:1"

	# A registry that never answers: the caller's deadline wins over the 10 s budget.
	start_fake stall --mode stall; port=$fport
	cfg=$(fake_cfg "$port")
	t0=$(date +%s%N)
	run 7 "fake: stalled registry -> timeout" "$REGISTRY_PROBE" --config "$cfg" --deadline-ms 1500 "127.0.0.1:$port/x/y:1"
	t1=$(date +%s%N)
	elapsed=$(((t1 - t0) / 1000000))
	if [ "$elapsed" -ge 1400 ] && [ "$elapsed" -lt 2500 ]; then
		pass "fake: deadline honoured ($elapsed ms for 1500)"
	else
		fail "fake: deadline 1500 ms took $elapsed ms"
	fi
	expect_match "fake: timeout message" "$out" "error timeout 127.0.0.1:$port/x/y:1: registry 127.0.0.1:$port: .*timed out"
	run 5 "fake: stalled registry via CLI --timeout" "$PINLET_BIN" resolve --config "$cfg" --timeout 1s "127.0.0.1:$port/x/y:1"
}

case ${1:-} in
plain | tls | basic | bearer | fake) "case_$1" ;;
*)
	echo "usage: $0 plain|tls|basic|bearer|fake" >&2
	exit 2
	;;
esac
if [ "$failures" -gt 0 ]; then
	echo "$failures check(s) failed" >&2
	exit 1
fi
echo "all checks passed"
