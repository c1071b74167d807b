# syntax=docker/dockerfile:1
# The one image, hub-broker: `hub-broker hub` (the relay), `hub-broker operator`,
# `hub-broker agent`. The Helm chart runs the operator from it, and the operator runs each
# Hub's pods from it unless the Hub names another image.
ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are here. Native modules
# (argon2) ship prebuilt binaries for linux x64 and arm64 and need no install step.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY common ./common
COPY protocol ./protocol
COPY hub ./hub
COPY agent ./agent
COPY operator ./operator
COPY cli ./cli
COPY demo ./demo
RUN npm run build && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY crds ./crds
RUN chmod 0755 dist/cli/hub-broker.js && ln -s /app/dist/cli/hub-broker.js /usr/local/bin/hub-broker
# The node user of the base image; the chart and the operator run pods as non-root.
USER 1000:1000
EXPOSE 8080
ENTRYPOINT ["hub-broker"]
CMD ["--help"]
