#!/usr/bin/env bash
# check-install.sh BUILD_DIR - what a user gets from `cmake --install`:
# into a fresh prefix P, then
#   - `man -M P/share/man detour-send` shows the page, with the exit codes;
#   - P/bin/detour run, from a directory without scenarios, finds the
#     installed conformance suite with no argument and passes it;
#   - a program outside the tree links the fake servers through
#     pkg-config (detour-fake) and talks to one;
#   - the same program builds against the CMake package (detour::fake);
#   - every installed header has its pkg-config module;
#   - the completions are installed and know every command.
# Exit 0 pass, 1 fail, 77 skip (no man, cc or pkg-config).
set -u
build=$1
here=$(cd "$(dirname "$0")" && pwd)
for tool in man cc pkg-config; do
  command -v $tool >/dev/null || { echo "skip: no $tool"; exit 77; }
done
tmp=$(mktemp -d /tmp/detour-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
P=$tmp/prefix
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }

cmake --install "$build" --prefix "$P" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; exit 1; }

page=$(MANWIDTH=80 man -M "$P/share/man" detour-send 2>&1)
check "man -M P/share/man detour-send shows the page" \
  '[[ $page == *"detour-send - send one message"* && $page == *"--from ADDR"* ]]'
check "the page lists the exit codes" \
  '[[ $page == *"Exit status"* && $page == *"75"* && $page == *"78"* ]]'
for c in detour detour-serve detour-run detour-bench detour-sendmail; do
  check "man page $c" '[[ -f $P/share/man/man1/$c.1 ]]'
done

mkdir "$tmp/elsewhere"
out=$(cd "$tmp/elsewhere" && "$P/bin/detour" run --no-progress -j 2 2>&1)
rc=$?
n=$(ls "$P/share/detour/scenarios/conformance"/*.yaml | wc -l)
check "installed detour run finds the suite with no argument ($n scenarios)" \
  '[[ $rc -eq 0 && $out == *"$n passed, 0 failed"* ]]'
check "and it is the installed suite" \
  '[[ $out == "suite: $P/bin/../share/detour/scenarios/conformance"* ]]'
check "the docs are installed" '[[ -f $P/share/detour/docs/rules.md ]]'

export PKG_CONFIG_PATH=$P/lib/pkgconfig
# A sanitizer build installs instrumented libraries: a consumer links them
# with the same runtime.
san=""
if nm "$P/lib/libdetour.a" 2>/dev/null | grep -q __asan_; then
  san="-fsanitize=address,undefined"
fi
for h in "$P"/include/detour/*.h; do
  base=$(basename "$h" .h)
  case $base in
    detour|detour_config|detour_uv|detour_yaml) mod=detour ;;
    fake) mod=detour-fake ;;
    netsim) mod=detour-netsim ;;
    scenario|adapter) mod=detour-scenario ;;
    reports) mod=detour-reports ;;
    *) mod=none ;;
  esac
  check "header $base.h has pkg-config module $mod" \
    'pkg-config --exists $mod && echo "#include <detour/$base.h>" |
       cc -std=c11 -D_DEFAULT_SOURCE $(pkg-config --cflags $mod) -x c -fsyntax-only -'
done

check "a consumer links the fake servers through pkg-config" \
  'cc -std=c11 -D_DEFAULT_SOURCE $san -o "$tmp/consumer" "$here/consumer_fake.c" \
     $(pkg-config --cflags --libs detour-fake) 2>"$tmp/cc.log" || { cat "$tmp/cc.log"; false; }'
check "and the consumer talks to a fake server" \
  '"$tmp/consumer" | grep -q "greeting: 220 consumer.test hello"'

mkdir -p "$tmp/cmake-consumer"
cat >"$tmp/cmake-consumer/CMakeLists.txt" <<CMK
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(detour REQUIRED)
add_executable(consumer $here/consumer_fake.c)
target_compile_definitions(consumer PRIVATE _DEFAULT_SOURCE)
target_link_libraries(consumer PRIVATE detour::fake)
if(NOT "$san" STREQUAL "")
  target_compile_options(consumer PRIVATE $san)
  target_link_options(consumer PRIVATE $san)
endif()
CMK
check "a CMake consumer links detour::fake" \
  'cmake -S "$tmp/cmake-consumer" -B "$tmp/cmake-consumer/b" -DCMAKE_PREFIX_PATH="$P" >"$tmp/cm.log" 2>&1 &&
   cmake --build "$tmp/cmake-consumer/b" >>"$tmp/cm.log" 2>&1 &&
   "$tmp/cmake-consumer/b/consumer" | grep -q "220 consumer.test" || { tail -20 "$tmp/cm.log"; false; }'

check "bash completion installed, knows every command" \
  'grep -q "send serve run bench sendmail" "$P/share/bash-completion/completions/detour"'
check "zsh completion installed" '[[ -f $P/share/zsh/site-functions/_detour ]]'
exit $fail
