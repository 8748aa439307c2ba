#!/usr/bin/env bash
# Print the nginx site (deploy/nginx/ia-comercial.conf) filled in for this server. install.sh
# uses it, and so do the tests, so what they run is what a server gets.
#
#   DOMAIN=ventas.example.cl APP_DIR=/opt/ia-comercial ACME_ROOT=/var/www/letsencrypt \
#   CERT=... KEY=... [UPSTREAMS="10.0.0.11:3000 10.0.0.12:3000"] [HTTP_PORT=80] [HTTPS_PORT=443] \
#   deploy/nginx/render.sh
#
# UPSTREAMS: the suite's nodes, host:port separated by spaces (default 127.0.0.1:$PORT, or
# :3000): one `server` line each in the upstream block.
set -euo pipefail
: "${DOMAIN:?DOMAIN is needed}" "${APP_DIR:?APP_DIR is needed}" "${ACME_ROOT:?ACME_ROOT is needed}"
: "${CERT:?CERT is needed}" "${KEY:?KEY is needed}"
UPSTREAMS=${UPSTREAMS:-127.0.0.1:${PORT:-3000}}
host_port='^[][A-Za-z0-9._:-]+:[0-9]+$'  # a name, IPv4 or [IPv6], then :port
for upstream in $UPSTREAMS; do
  [[ $upstream =~ $host_port ]] || {
    echo "UPSTREAMS: '$upstream' is not host:port" >&2
    exit 2
  }
done
awk -v upstreams="$UPSTREAMS" '
  /__UPSTREAM__/ {
    n = split(upstreams, each, " ")
    for (i = 1; i <= n; i++) { line = $0; sub(/__UPSTREAM__/, each[i], line); print line }
    next
  }
  { print }
' "$(dirname "$0")/ia-comercial.conf" |
  sed -e "s|__DOMAIN__|$DOMAIN|g" -e "s|__APP_DIR__|$APP_DIR|g" \
      -e "s|__ACME_ROOT__|$ACME_ROOT|g" \
      -e "s|__HTTP_PORT__|${HTTP_PORT:-80}|g" -e "s|__HTTPS_PORT__|${HTTPS_PORT:-443}|g" \
      -e "s|__CERT__|$CERT|g" -e "s|__KEY__|$KEY|g"
