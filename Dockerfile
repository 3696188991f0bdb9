# Build: the official Bun image, pinned to the version the project is tested with, compiles flowd
# into one self-contained binary.
FROM oven/bun:1.4.5 AS build
WORKDIR /src
COPY package.json bun.lock ./
RUN bun install --frozen-lockfile
# Everything the build embeds (sources, migrations, UI assets); .dockerignore keeps the rest out.
COPY . .
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
# Readiness, not liveness: healthy only once Postgres and Redis answer (a `degraded` recorder still
# answers 200). For --role=api and --role=all; a --role=worker container serves health only with
# WORKER_HEALTH_PORT set, and overrides this check (see docker-compose.yml).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORT}/readyz" || exit 1
ENTRYPOINT ["flowd"]
CMD ["--role=all"]
