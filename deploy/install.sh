#!/usr/bin/env bash
# Install or upgrade IA Comercial on Ubuntu 22.04/24.04: user, code, venv, config, systemd
# unit, nginx site, Let's Encrypt certificate, firewall. Idempotent: run it again to
# upgrade (the code is replaced, config and data are kept).
#
#   sudo deploy/install.sh ventas.example.cl admin@example.cl
#
# Behind one nginx for several nodes (README, "From one server to several"), name them:
#   sudo UPSTREAMS="10.0.0.11:3000 10.0.0.12:3000" deploy/install.sh ventas.example.cl admin@example.cl
set -euo pipefail

DOMAIN=${1:?usage: install.sh DOMAIN EMAIL_FOR_LETSENCRYPT}
EMAIL=${2:?usage: install.sh DOMAIN EMAIL_FOR_LETSENCRYPT}
APP_DIR=/opt/ia-comercial
CONF_DIR=/etc/ia-comercial
DATA_DIR=/var/lib/ia-comercial
LOG_DIR=/var/log/ia-comercial
ACME_ROOT=/var/www/letsencrypt
SOURCE=$(cd "$(dirname "$0")/.." && pwd)

[ "$(id -u)" = 0 ] || { echo "run as root (sudo)" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q python3 python3-venv nginx certbot ufw rsync

id ia-comercial >/dev/null 2>&1 ||
  useradd --system --home-dir "$DATA_DIR" --shell /usr/sbin/nologin ia-comercial
install -d -o ia-comercial -g ia-comercial -m 0750 "$DATA_DIR" "$DATA_DIR/backups" "$LOG_DIR" \
  "$DATA_DIR/config"
install -d -o root -g ia-comercial -m 0750 "$CONF_DIR"
install -d "$ACME_ROOT"

# Code: replaced on every run; the venv is rebuilt in place.
rsync -a --delete --exclude .git --exclude .venv --exclude db --exclude logs \
  "$SOURCE/" "$APP_DIR/"
python3 -m venv "$APP_DIR/.venv"
"$APP_DIR/.venv/bin/pip" install -q --upgrade pip
"$APP_DIR/.venv/bin/pip" install -q "$APP_DIR"

# Config: written once, never overwritten (it is the business's).
[ -f "$CONF_DIR/ia-comercial.env" ] ||
  install -o root -g ia-comercial -m 0640 "$APP_DIR/deploy/ia-comercial.env.example" \
    "$CONF_DIR/ia-comercial.env"
# business.json is the owner's to edit from the dashboard: it lives with the service's data
# (the unit lets it write only /var/lib and /var/log). An older install kept it in /etc.
if [ ! -f "$DATA_DIR/config/business.json" ]; then
  source_json="$APP_DIR/config/business.json"
  [ -f "$CONF_DIR/business.json" ] && source_json="$CONF_DIR/business.json"
  install -o ia-comercial -g ia-comercial -m 0640 "$source_json" "$DATA_DIR/config/business.json"
fi
if grep -q '^BUSINESS_CONFIG=/etc/ia-comercial/business.json' "$CONF_DIR/ia-comercial.env"; then
  sed -i 's|^BUSINESS_CONFIG=.*|BUSINESS_CONFIG=/var/lib/ia-comercial/config/business.json|' \
    "$CONF_DIR/ia-comercial.env"
fi
[ -f "$CONF_DIR/systemPrompt.txt" ] ||
  install -o root -g ia-comercial -m 0640 "$APP_DIR/prompts/systemPrompt.txt" "$CONF_DIR/"

set -a; . "$CONF_DIR/ia-comercial.env"; set +a
sudo -u ia-comercial --preserve-env "$APP_DIR/.venv/bin/ia-comercial" check-config

install -m 0644 "$APP_DIR/deploy/systemd/ia-comercial.service" /etc/systemd/system/
systemctl daemon-reload
systemctl enable ia-comercial
systemctl restart ia-comercial

# nginx: plain HTTP first (for the ACME challenge), then the certificate, then TLS.
render() {
  DOMAIN=$DOMAIN APP_DIR=$APP_DIR ACME_ROOT=$ACME_ROOT UPSTREAMS=${UPSTREAMS:-} \
    CERT=/etc/letsencrypt/live/$DOMAIN/fullchain.pem KEY=/etc/letsencrypt/live/$DOMAIN/privkey.pem \
    "$APP_DIR/deploy/nginx/render.sh"
}
rm -f /etc/nginx/sites-enabled/default
if [ ! -f "/etc/letsencrypt/live/$DOMAIN/fullchain.pem" ]; then
  cat > /etc/nginx/sites-enabled/ia-comercial.conf <<ACME
server {
    listen 80;
    server_name $DOMAIN;
    location /.well-known/acme-challenge/ { root $ACME_ROOT; }
}
ACME
  nginx -t && systemctl reload nginx
  certbot certonly --webroot -w "$ACME_ROOT" -d "$DOMAIN" -m "$EMAIL" --agree-tos -n
fi
render > /etc/nginx/sites-enabled/ia-comercial.conf
nginx -t && systemctl reload nginx
# Renewals reload nginx.
install -d /etc/letsencrypt/renewal-hooks/deploy
printf '#!/bin/sh\nsystemctl reload nginx\n' > /etc/letsencrypt/renewal-hooks/deploy/nginx
chmod 0755 /etc/letsencrypt/renewal-hooks/deploy/nginx

"$APP_DIR/deploy/firewall.sh"

echo "IA Comercial is running: https://$DOMAIN/  (ia-comercial status, journalctl -u ia-comercial)"
