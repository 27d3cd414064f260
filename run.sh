#!/usr/bin/env bash
# run.sh - one entry point for a fresh Debian machine.
#
#   ./run.sh deps    install the build and test dependencies (apt-get; needs root)
#   ./run.sh build   build dependencies + the release build in build/
#   ./run.sh test    build and test dependencies + build + every test, twice: the
#                    release build and a debug build with ASan and UBSan; ends
#                    with the line "N passed, N failed"
#   ./run.sh demo    build dependencies, curl, python3 + build + advjpgd on the
#                    embedded model running the paper's experiment on the demo set
#   ./run.sh bench   build dependencies + build + the engine benchmark (overfeat-fast)
#   ./run.sh fuzz [SECONDS]
#                    clang + libFuzzer build in build-fuzz/ (ASan, UBSan), then
#                    each tests/fuzz target for SECONDS (default 60), new
#                    inputs in build-fuzz/corpus/NAME, crashes in build-fuzz/
set -euo pipefail
cd "$(dirname "$0")"

# What building needs; what the demo runs besides (tools/demo.sh: curl, python3);
# what only the tests need. `build`, `demo` and `bench` install no test packages.
BUILD_PACKAGES=(meson ninja-build pkg-config gcc libc6-dev
  libmicrohttpd-dev libjansson-dev libturbojpeg0-dev libjpeg62-turbo-dev
  libpng-dev libstb-dev libopenblas-dev libinih-dev libcurl4-openssl-dev
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev
  help2man bash-completion)
DEMO_PACKAGES=(curl python3)
TEST_PACKAGES=(curl python3 libjpeg-turbo-progs libxml2-utils jq shellcheck systemd
  chromium nodejs jupyter-nbconvert python3-ipykernel python3-nbclient python3-requests
  python3-pandas python3-matplotlib python3-scipy python3-pil
  libonnx-testdata python3-torch python3-torchvision
  groff-base man-db
  slurm-wlm munge)

# install_pkgs PACKAGE...: apt-get installs those that are missing (as root or through sudo)
install_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${missing[*]}"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

build_deps() { install_pkgs "${BUILD_PACKAGES[@]}"; }

test_deps() {
  local extra=()
  # Debian's nodejs comes without npm; another nodejs package may bring its own
  command -v npm >/dev/null || extra+=(npm)
  install_pkgs "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}" "${extra[@]}"
}

build() {
  [ -f build/build.ninja ] || meson setup build --buildtype=release
  ninja -C build
}

# Runs one build's tests; appends its counts to the totals.
PASSED=0
FAILED=0
SKIPPED=0
run_tests() {
  local dir=$1
  meson test -C "$dir" --print-errorlogs --num-processes 2 || true
  local log="$dir/meson-logs/testlog.json"
  local p f s
  p=$(grep -c '"result": "OK"' "$log" || true)
  s=$(grep -c '"result": "SKIP"' "$log" || true)
  f=$(grep -c -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)
  echo "$dir: $p passed, $f failed, $s skipped"
  PASSED=$((PASSED + p))
  FAILED=$((FAILED + f))
  SKIPPED=$((SKIPPED + s))
}

tests() {
  test_deps
  build
  run_tests build
  [ -f build-asan/build.ninja ] ||
    meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
  ninja -C build-asan
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_tests build-asan
  echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
  [ "$FAILED" -eq 0 ]
}

# The fuzz targets of tests/fuzz/meson.build, one after another.
fuzz() {
  local secs=${1:-60} t
  install_pkgs "${BUILD_PACKAGES[@]}" clang libclang-rt-dev
  [ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true \
    -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debugoptimized
  ninja -C build-fuzz
  for t in $(sed -n "s/^  \['\([a-z_]*\)',.*/\1/p" tests/fuzz/meson.build); do
    mkdir -p "build-fuzz/corpus/$t"
    echo "fuzz_$t: $secs s"
    build-fuzz/tests/fuzz/fuzz_"$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
      -artifact_prefix="build-fuzz/crash-$t-" "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" \
      2>&1 | grep -E '^(#[0-9]+ +DONE|==[0-9]+==|SUMMARY|Done)' || true
  done
  if compgen -G "build-fuzz/crash-*" >/dev/null; then
    echo "fuzz: inputs that crash are in build-fuzz/crash-*"
    return 1
  fi
}

case "${1:-}" in
  deps) test_deps ;;
  build) build_deps; build ;;
  test) tests ;;
  demo) install_pkgs "${BUILD_PACKAGES[@]}" "${DEMO_PACKAGES[@]}"; build; exec bash tools/demo.sh ;;
  bench) build_deps; build; ./build/bench/advjpg-bench --model overfeat-fast ;;
  fuzz) fuzz "${2:-60}" ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
