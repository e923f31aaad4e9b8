# wagate: one image, one command line (`wagate <command>`); the chart runs a command per role:
#   ingest, worker, autoscaler, migrate, cleanup, dlq ...
#
# The base is the official Node.js slim image of the version scripts/node.sh pins, by tag.
# To pin the digest as well (recommended for production builds), resolve it once:
#   docker buildx imagetools inspect node:24.22.3-slim --format '{{json .Manifest.Digest}}'
# and build with --build-arg NODE_IMAGE=node:24.22.3-slim@sha256:<digest>.
ARG NODE_IMAGE=node:24.22.3-slim

# --- build: all dependencies, TypeScript to dist/ ----------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Fixes to dependencies, applied by npm ci's postinstall (patch-package); see patches/README.md.
COPY patches ./patches
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime: production dependencies, dist/, migrations/ and reply-texts/ only ------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
# Node sizes V8's young generation from the memory limit: in a 512 MiB pod it is so small that
# the ingest spent 35 to 95 % more CPU per request on collections (the bench's ingest part,
# README "Performance"). 16 MiB semi-spaces keep the unlimited speed at about 150 MiB RSS.
ENV NODE_OPTIONS=--max-semi-space-size=16
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
# The npm cache stays in a build cache mount, out of the image.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund
COPY --from=build /app/dist ./dist
COPY migrations ./migrations
# The default reply catalogues; a shop's own copies are mounted and named by REPLY_TEXTS_DIR.
COPY reply-texts ./reply-texts
# A numeric, non-root user (Kubernetes' runAsNonRoot can only check a number). Nothing in the
# image is writable by it, and nothing needs to be: it runs with a read-only root filesystem
# (the chart mounts an emptyDir at /tmp).
USER 10001:10001
EXPOSE 3000 9464
ENTRYPOINT ["node", "dist/main.js"]
CMD ["ingest"]
