#!/usr/bin/env bash
# Builds librdkafka's own `rdkafka_performance` example, the client the benchmark drives, and
# bench/txn_perf.c (transactional against plain produce, for bench/groups.sh) against the same
# static librdkafka.
#
# The source comes from crates.io: the `rdkafka-sys` crate bundles librdkafka's full source
# tree, examples included. A throwaway Cargo project under bench/build/ depends on it,
# `cargo fetch` downloads it, and librdkafka is built with its own ./configure and make,
# without SSL, SASL, curl, zstd or zlib (nothing the benchmark uses), statically linked.
#
# Usage: bench/build-client.sh        prints the path of rdkafka_performance on its last line
#                                     (txn_perf is beside it, in the same bin/ directory)
#   SPATE_BENCH_CLIENT_SSL=1 bench/build-client.sh
#                                     builds a second copy with OpenSSL (SSL, SASL SCRAM) in its
#                                     own tree, for bench/security.sh: rdkafka_performance-ssl
# Cached under bench/build/ (git-ignored); delete bench/build/ to rebuild.
set -euo pipefail

RDKAFKA_SYS_VERSION=4.10.0
LIBRDKAFKA_VERSION=2.12.1

SSL=${SPATE_BENCH_CLIENT_SSL:-0}
suffix=
ssl_flag=--disable-ssl
if [[ $SSL == 1 ]]; then
    suffix=-ssl
    ssl_flag=--enable-ssl
fi

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build_dir=$bench_dir/build
bin=$build_dir/bin/rdkafka_performance$suffix
stamp=$build_dir/bin/rdkafka_performance$suffix.version

log() { printf '[build-client] %s\n' "$*" >&2; }

work=$build_dir/librdkafka-$LIBRDKAFKA_VERSION$suffix
txn_perf=$build_dir/bin/txn_perf

# bench/txn_perf.c, rebuilt whenever the source is newer than the binary. Linked like
# librdkafka's own examples (examples/Makefile): the static library and its system libraries.
# Only against the copy without SSL.
build_txn_perf() {
    [[ $SSL == 1 ]] && return 0
    [[ -x $txn_perf && $txn_perf -nt $bench_dir/txn_perf.c && $txn_perf -nt $work/src/librdkafka.a ]] && return 0
    log "compiling $txn_perf"
    cc -O2 -g -Wall -Wextra -isystem "$work/src" "$bench_dir/txn_perf.c" -o "$txn_perf" \
        "$work/src/librdkafka.a" -lm -ldl -lpthread -lrt >&2
}

if [[ -x $bin && -f $stamp && $(cat "$stamp") == "$LIBRDKAFKA_VERSION" && -f $work/src/librdkafka.a ]]; then
    log "cached: $bin (librdkafka $LIBRDKAFKA_VERSION)"
    build_txn_perf
    echo "$bin"
    exit 0
fi

# A C toolchain is all librdkafka needs with the options below.
missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v make >/dev/null || missing+=(make)
if [[ $SSL == 1 ]]; then
    [[ -f /usr/include/openssl/ssl.h ]] || missing+=(libssl-dev)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
fi
if ((${#missing[@]})); then
    log "installing ${missing[*]} with apt-get"
    apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
        { apt-get update >&2 && apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
fi

# 1. Fetch the crate that carries librdkafka's source.
fetch_dir=$build_dir/fetch
mkdir -p "$fetch_dir/src"
cat >"$fetch_dir/Cargo.toml" <<EOF
# Throwaway project: only here so that \`cargo fetch\` downloads librdkafka's source.
[package]
name = "spate-bench-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
rdkafka-sys = { version = "=$RDKAFKA_SYS_VERSION", default-features = false }
EOF
: >"$fetch_dir/src/lib.rs"
log "cargo fetch rdkafka-sys =$RDKAFKA_SYS_VERSION"
(cd "$fetch_dir" && cargo fetch --quiet >&2)
manifest=$(cd "$fetch_dir" && cargo metadata --format-version 1 --quiet |
    python3 -c 'import json, sys
m = json.load(sys.stdin)
print(next(p["manifest_path"] for p in m["packages"] if p["name"] == "rdkafka-sys"))')
src=$(dirname "$manifest")/librdkafka
[[ -f $src/examples/rdkafka_performance.c ]] || { log "no librdkafka source in $src"; exit 1; }

# 2. Build a private copy (the registry copy stays pristine).
rm -rf "$work"
cp -r "$src" "$work"
cd "$work"
log "configuring librdkafka $LIBRDKAFKA_VERSION ($ssl_flag) in $work"
./configure --no-download --enable-static \
    "$ssl_flag" --disable-gssapi --disable-curl \
    --disable-zstd --disable-zlib --disable-lz4-ext --disable-syslog \
    >"$build_dir/configure$suffix.log" 2>&1 || { tail -30 "$build_dir/configure$suffix.log" >&2; exit 1; }
log "building librdkafka.a and examples/rdkafka_performance (about 2 minutes on 2 cores)"
{
    make -C src -j"$(nproc)" librdkafka.a &&
        make -C examples rdkafka_performance
} >"$build_dir/make$suffix.log" 2>&1 || { tail -30 "$build_dir/make$suffix.log" >&2; exit 1; }

mkdir -p "$build_dir/bin"
cp examples/rdkafka_performance "$bin"
echo "$LIBRDKAFKA_VERSION" >"$stamp"
log "built $bin"
build_txn_perf
echo "$bin"
