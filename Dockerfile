# One image for every Node service of the stack. docker-compose.yml picks the
# command per service: orchestrator/main.ts, gateways/main.ts,
# backoffice/main.ts, grafana/alert-receiver/main.ts or topics/create-cli.ts,
# each run as `node --import tsx <script>` (TypeScript, no build step): one
# process, so the SIGTERM of `docker stop` or Kubernetes reaches the service
# itself and starts its drain. deploy/ runs the same image on Kubernetes.
FROM node:20-slim

WORKDIR /app
ENV NODE_ENV=production

# Dependencies first, so a source change does not reinstall them. The patches go in with them:
# npm ci's postinstall applies them (patch-package, docs/decisions/0020).
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# Only what the services run (no tests, scripts or docs), listed one by one
# so the host's node_modules never lands in the image.
COPY tsconfig.json ./
COPY config ./config
COPY runtime ./runtime
COPY topics ./topics
COPY orchestrator ./orchestrator
COPY gateways ./gateways
COPY backoffice ./backoffice
COPY grafana/alert-receiver ./grafana/alert-receiver

# The young generation every service runs with, as scripts/processes.ts starts them (ADR 0019). In NODE_OPTIONS,
# so compose's and Kubernetes' own commands get it too. The old generation's floor is not allowed in NODE_OPTIONS:
# it is on each command line, here and in compose and deploy/ (ADR 0021).
ENV NODE_OPTIONS=--max-semi-space-size=32
USER node
CMD ["node", "--initial-old-space-size=64", "--import", "tsx", "orchestrator/main.ts"]
