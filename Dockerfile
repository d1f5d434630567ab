# One image for every Switchboard node; SERVICES picks its role (see docker-compose.yml, README.md).
# Node.js 22 on Debian bookworm with Debian's Chromium for the webjs engine (puppeteer never downloads one).
FROM node:22-bookworm-slim

ENV NODE_ENV=production \
    PUPPETEER_SKIP_DOWNLOAD=true \
    PUPPETEER_EXECUTABLE_PATH=/usr/bin/chromium \
    CHROMIUM_PATH=/usr/bin/chromium \
    PROFILE_DIR=/tmp/switchboard-profiles

# Chromium and the fonts WhatsApp Web renders with; tini-like signal handling comes from compose `init: true`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends chromium fonts-liberation fonts-noto-color-emoji ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
RUN chown node:node /app
USER node

# Dependencies first (cached while package*.json are unchanged). Node 22 is the base image's, so the
# `node` devDependency (and the other dev tools) are left out.
COPY --chown=node:node package.json package-lock.json .npmrc .puppeteerrc.cjs ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY --chown=node:node . .

# PORT is the gateway's; workers listen on nothing.
EXPOSE 3000
CMD ["npm", "run", "node"]
