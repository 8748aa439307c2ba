#!/usr/bin/env bash
# ufw: SSH, HTTP and HTTPS in; everything else denied. Safe to run again.
set -euo pipefail
command -v ufw >/dev/null || apt-get install -y ufw
ufw default deny incoming
ufw default allow outgoing
ufw allow 22/tcp comment 'ssh'
ufw allow 80/tcp comment 'http (redirect, ACME)'
ufw allow 443/tcp comment 'https'
ufw --force enable
ufw status verbose
