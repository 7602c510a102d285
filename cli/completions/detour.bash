# bash completion for detour (installed as
# share/bash-completion/completions/detour). tests/test_cli.py checks that
# every option of every command's --help is listed here.

_detour() {
  local cur prev cmd
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  cmd=${COMP_WORDS[1]}
  local commands="send serve run bench sendmail help"

  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
    return
  fi

  case $prev in
    --config|-c|--log|--script|-s|--record|-r|--json|--junit|--html|-C)
      COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --maildir|--eml-dir|--out|-o|--pcap|--report-dir)
      COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --detour) COMPREPLY=($(compgen -W "allow deny" -- "$cur")); return ;;
    --postfix) COMPREPLY=($(compgen -W "auto yes no" -- "$cur")); return ;;
    --client) COMPREPLY=($(compgen -W "builtin postfix" -- "$cur")); return ;;
  esac

  local opts
  case $cmd in
    send) opts="--config --server --from --to --retry-interval --max-attempts
                --connect-timeout --reply-timeout --detour --log --tls
                --ca-file --auth-user --auth-password-file --quiet
                --verbose --help --version" ;;
    serve) opts="--script --listen --record --maildir --eml-dir --quiet
                 --tls-dir --tls-host --help --version" ;;
    run) opts="--filter --jobs --realtime --mutate --client --out --json
               --junit --html --pcap --report-dir --verbose --quiet
               --no-progress --help --version" ;;
    bench) opts="--client --faults --messages --network --html --json
                 --compare --threshold --noise-floor --results --concurrency
                 --throughput-concurrency --timeout --help --version" ;;
    sendmail) opts="-t -i -oi -f -r -F -bm -C -v --help --version" ;;
    help) COMPREPLY=($(compgen -W "send serve run bench sendmail" -- "$cur"))
          return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [[ $cmd == run ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -F _detour detour
