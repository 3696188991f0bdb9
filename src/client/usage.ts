/** The commands that make the binary a client of a flowd API (kept here so --help loads nothing else). */
export const CLIENT_COMMANDS: ReadonlySet<string> = new Set(["login", "flows", "jobs", "run", "schedules", "webhooks", "handlers", "workers", "operations", "completion"]);

/** The client commands' part of `flowd --help`. */
export const CLIENT_USAGE = `Client commands (talk to a flowd API over its public REST and socket API):
  flowd login --url URL [--token T] [--context NAME]
                                       check the token against URL and store both (~/.config/flowd/config.json, 0600)
  flowd flows list [filters] [--limit N] [--cursor C]
  flowd flows get ID | watch ID        a flow's tree; watch: live, with a progress bar (exit 0 completed, 1 failed)
  flowd flows cancel|retry|delete ID   one flow
  flowd flows cancel|retry|delete [filters] [--dry-run] [--yes] [--no-wait]
                                       every flow the filters match, as one bulk operation (asks first, showing the count)
  flowd jobs list|get|watch|cancel|retry|delete …   the same for single jobs (watch: its statuses until it ends)
  flowd run FILE.json [--wait|--watch] create a flow from a file (- for stdin)
  flowd run --definition NAME [--input JSON|@FILE] [--version N] [--wait|--watch]
  flowd schedules|webhooks|handlers|workers list
  flowd operations list | get ID | cancel ID
  flowd completion bash|zsh            a shell completion script (source <(flowd completion bash))
Filters: --status S  --name PREFIX  --data JSON  --since 1h|ISO  --until 1h|ISO  --definition NAME  --schedule ID
Every client command: --json (one JSON value; JSON lines for watch, no colour), --context NAME, --url URL, --token T.
FLOWD_URL and FLOWD_TOKEN override the stored context; NO_COLOR turns colours off. Exit: 0 ok, 1 error, 2 usage.
`;
