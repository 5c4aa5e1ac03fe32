# syntax=docker/dockerfile:1
# tiergate: build with the dev toolchain, ship only dist/, protos/ and production dependencies on a distroless
# Node 20 runtime (no shell, no package manager) as the non-root user 65532.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY protos ./protos
RUN npm run build

FROM node:20-bookworm-slim AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
# The ledger and spool directory, owned by the runtime user (a named volume mounted here inherits it).
RUN mkdir -p /out/var/lib/tiergate/ledger /out/var/lib/tiergate/spool && chown -R 65532:65532 /out/var/lib/tiergate

FROM gcr.io/distroless/nodejs20-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
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
