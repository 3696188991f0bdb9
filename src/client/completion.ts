/** `flowd completion bash|zsh`: a completion script for commands, subcommands and flags (zsh through bashcompinit). */

const SUBCOMMANDS: Record<string, string> = {
  flows: "list get watch cancel retry delete",
  jobs: "list get watch cancel retry delete",
  operations: "list get cancel",
  schedules: "list",
  webhooks: "list",
  handlers: "list",
  workers: "list",
};
const COMMON = "--json --context --url --token --help";
const FILTERS = "--status --name --data --since --until --definition --schedule";
const FLAGS: Record<string, string> = {
  login: "--url --token --context",
  run: `--definition --input --version --wait --watch ${COMMON}`,
  list: `${FILTERS} --limit --cursor ${COMMON}`,
  bulk: `${FILTERS} --yes --dry-run --no-wait ${COMMON}`,
  other: COMMON,
};

export function completionScript(shell: "bash" | "zsh"): string {
  const subs = Object.entries(SUBCOMMANDS)
    .map(([cmd, list]) => `    ${cmd}) COMPREPLY=($(compgen -W "${list}" -- "$cur")); return;;`)
    .join("\n");
  const bash = `_flowd() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" cmd="\${COMP_WORDS[1]}" sub="\${COMP_WORDS[2]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "login run ${Object.keys(SUBCOMMANDS).join(" ")} completion dev migrate token types --help --version" -- "$cur")); return
  fi
  if [ "$COMP_CWORD" -eq 2 ] && [[ "$cur" != -* ]]; then
    case "$cmd" in
${subs}
      status|run) ;;
    esac
  fi
  case "$cmd $sub" in
    login*) COMPREPLY=($(compgen -W "${FLAGS.login}" -- "$cur"));;
    run*) COMPREPLY=($(compgen -W "${FLAGS.run}" -- "$cur"));;
    *" list") COMPREPLY=($(compgen -W "${FLAGS.list}" -- "$cur"));;
    *" cancel"|*" retry"|*" delete") COMPREPLY=($(compgen -W "${FLAGS.bulk}" -- "$cur"));;
    *) COMPREPLY=($(compgen -W "${FLAGS.other}" -- "$cur"));;
  esac
}
complete -o default -F _flowd flowd
`;
  return shell === "bash" ? bash : `autoload -U +X bashcompinit && bashcompinit\n${bash}`;
}
