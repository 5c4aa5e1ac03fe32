# syntax=docker/dockerfile:1
# tiergate: build with the dev toolchain, ship only dist/, protos/ and production dependencies on a distroless
# Node 24 runtime (no shell, no package manager) as the non-root user 65532.
# Node 24, not the Node 20 of the development machines: Node 20's support ended in April 2026 (Node 22's ends in
# April 2027, Node 24's in April 2028), and Node 22.10 and later let tiergate raise HTTP/2's rapid-reset limit,
# which Envoy's stream-close pattern runs into (README "Envoy's stream-close pattern"). .ci/run runs the test
# suite on both.
#   docker build -t tiergate .                          the server (the default, last stage)
#   docker build --target canary -t tiergate-canary .    the same plus kubectl, for the canary CronJob

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY protos ./protos
RUN npm run build

FROM node:24-bookworm-slim AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=optional: only recheck has optional dependencies (its native binary and a JAR, 52 MB); tiergate runs
# its JS build in a worker of its own (src/classify/regex-safety.ts).
RUN npm ci --omit=dev --omit=optional --ignore-scripts && npm cache clean --force
# The ledger and spool directory, owned by the runtime user (a named volume mounted here inherits it).
RUN mkdir -p /out/var/lib/tiergate/ledger /out/var/lib/tiergate/spool && chown -R 65532:65532 /out/var/lib/tiergate

FROM node:24-bookworm-slim AS kubectl
ARG KUBECTL_VERSION=v1.34.1
# BuildKit sets TARGETARCH from --platform (amd64, arm64) only when the stage declares it without a value: a
# default here took precedence, and an arm64 canary image shipped an amd64 kubectl ("exec format error" in the
# CronJob on arm64 nodes).
ARG TARGETARCH
ADD --chmod=755 https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH}/kubectl /kubectl

FROM gcr.io/distroless/nodejs24-debian12:nonroot AS runtime
WORKDIR /app
ENV NODE_ENV=production
# V8's young generation fixed at 32 MB, whatever the container's memory limit. V8 sizes it from the limit: 2 MB
# at 512 MiB or less, 32 MB at 768 MiB-1 GiB, 64 MB at 1.5-2 GiB, 128 MB from 4 GiB (npm run bench:memory-limits), and
# tiergate, which allocates ~58 KB per request, pays at both ends: collections all the time in a small one,
# allocations spread through memory the CPU's caches do not hold in a large one. In bench:variants on Node 24
# this flag took 93 us of CPU off each request in a 512 MiB cgroup, and 72 and 109 us with no limit (every round
# lower, 24 in all); README "Docker Compose". If you set NODE_OPTIONS yourself, keep it.
ENV NODE_OPTIONS=--max-semi-space-size=16
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/protos ./protos
COPY package.json ./
COPY --from=prod-deps --chown=65532:65532 /out/var/lib/tiergate /var/lib/tiergate
USER 65532:65532
# ext_proc gRPC, admin (/healthz, /readyz, /metrics)
EXPOSE 9002 9090
# The image's entrypoint is node; this is `tiergate serve` (embedded defaults unless --config is given).
CMD ["dist/cli.js", "serve"]

# `tiergate canary check` run as a CronJob patches the HTTPRoute with kubectl (in-cluster credentials).
FROM runtime AS canary
COPY --from=kubectl /kubectl /usr/local/bin/kubectl
CMD ["dist/cli.js", "canary", "check"]

# The default build is the server.
FROM runtime
