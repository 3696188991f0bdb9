# Build: the official Bun image compiles flowd into one self-contained binary.
FROM oven/bun:1.4 AS build
WORKDIR /src
COPY package.json bun.lock ./
RUN bun install --frozen-lockfile
COPY tsconfig.json ./
COPY src ./src
COPY drizzle ./drizzle
COPY scripts ./scripts
RUN bun run build

# Run: the binary alone on a slim glibc base, as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home flowd
COPY --from=build /src/dist/flowd /usr/local/bin/flowd
ENV HOST=0.0.0.0 PORT=3000
EXPOSE 3000
USER flowd
# For --role=api and --role=all. A --role=worker container serves health only with
# WORKER_HEALTH_PORT set, and overrides this check (see docker-compose.yml).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORT}/healthz" || exit 1
ENTRYPOINT ["flowd"]
CMD ["--role=all"]
