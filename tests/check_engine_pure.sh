#!/bin/sh
# The engine is sans-I/O (STYLE.md): nothing in core/src/engine*.c may read a
# clock, sleep, open a socket, print or draw random numbers. Fails with the
# offending lines.
dir=${1:-core/src}
pattern='\b(time|clock_gettime|gettimeofday|clock|sleep|usleep|nanosleep|socket|connect|bind|listen|accept|send|recv|read|write|printf|fprintf|puts|fputs|putchar|perror|rand|random|srand|getaddrinfo|uv_[a-z_]+)[[:space:]]*\('
files=$(ls "$dir"/engine*.c 2>/dev/null)
[ -n "$files" ] || { echo "no engine sources under $dir"; exit 1; }
# Strip comments and string literals first so that prose may name them.
bad=$(for f in $files; do
  sed -e 's://.*$::' -e 's:"[^"]*":"":g' "$f" | awk -v f="$f" '
    { line = $0 }
    /\/\*/ { incomment = 1 }
    { if (!incomment) print f ":" NR ": " line }
    /\*\// { incomment = 0 }' | grep -E "$pattern" | grep -vE '(^|[^a-z_])(detour_|->|\.)[a-z_]*(send|connect|write|read)'
done)
if [ -n "$bad" ]; then
  echo "engine sources call I/O, clock, sleep, print or rand:"
  echo "$bad"
  exit 1
fi
echo "engine sources are pure ($(echo $files | wc -w) files checked)"
