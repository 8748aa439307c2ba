#!/usr/bin/env bash
# Remove IA Comercial's service, site and code. Data, backups, logs and config are KEPT
# unless --purge is given (then they are deleted too). The firewall is left as it is.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "run as root (sudo)" >&2; exit 1; }
systemctl disable --now ia-comercial 2>/dev/null || true
rm -f /etc/systemd/system/ia-comercial.service
systemctl daemon-reload
rm -f /etc/nginx/sites-enabled/ia-comercial.conf
nginx -t 2>/dev/null && systemctl reload nginx || true
rm -rf /opt/ia-comercial
if [ "${1:-}" = "--purge" ]; then
  rm -rf /var/lib/ia-comercial /var/log/ia-comercial /etc/ia-comercial
  userdel ia-comercial 2>/dev/null || true
  echo "removed, data included"
else
  echo "removed; kept /var/lib/ia-comercial (data, backups), /var/log/ia-comercial, /etc/ia-comercial"
fi
