#!/bin/sh
# SPDX-License-Identifier: MIT
# Quick start, first command: install dependencies, build, and run the MTA on a throwaway
# configuration in a temporary directory (receiver on 127.0.0.1:2525, mail delivered to
# mailboxes under that directory). Sends one message to root to show it working, then keeps
# running until Ctrl-C. Run as root (it creates the unprivileged "mta" user if missing).
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
build=${MTA_DEMO_BUILD:-build}
port=${MTA_DEMO_PORT:-2525}
sh tests/deps.sh >/dev/null
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
ninja -C "$build" >/dev/null

getent passwd mta >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin mta
getent group mail >/dev/null || groupadd --system mail

dir=$(mktemp -d /tmp/mta-demo.XXXXXX)
chmod 755 "$dir"
mkdir -p "$dir/etc" "$dir/spool" "$dir/mail"
chown mta: "$dir/spool"
chown root:mail "$dir/mail"
chmod 2775 "$dir/mail"
cat >"$dir/etc/main.cf" <<CF
# A throwaway configuration: everything lives under $dir.
myhostname = localhost.localdomain
mydestination = \$myhostname, localhost
mynetworks = 127.0.0.0/8, [::1]/128
queue_directory = $dir/spool
mail_spool_directory = $dir/mail
alias_maps = hash:$dir/etc/aliases
alias_database = hash:$dir/etc/aliases
CF
printf 'postmaster: root\nabuse: root\n' >"$dir/etc/aliases"
"$build/tools/map/mta-alias" -c "$dir/etc"

pids=""
cleanup() {
        for p in $pids; do kill "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        echo "Demo stopped; its files are in $dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

systemd-socket-activate -l "127.0.0.1:$port" "$src/$build/services/smtpd/mta-smtpd" -c "$dir/etc" &
pids="$pids $!"
# Stands in for mta-queue.path: run the queue whenever new mail is committed.
(
        while sleep 0.5; do
                if [ -n "$(ls -A "$dir/spool/new" 2>/dev/null)" ]; then
                        "$src/$build/services/queue/mta-queue" -c "$dir/etc" || true
                fi
        done
) &
pids="$pids $!"

sleep 0.5
swaks --silent 1 --server "127.0.0.1:$port" --from demo@example.org --to postmaster@localhost \
      --header "Subject: hello from the mta demo" --body "It works."
for _ in 1 2 3 4 5 6 7 8 9 10; do
        [ -s "$dir/mail/root" ] && break
        sleep 0.5
done
echo
echo "== /var/mail/root of the demo ($dir/mail/root), read with mail(1):"
printf 'from *\nx\n' | mail -N -f "$dir/mail/root" || true
echo
cat "$dir/mail/root"
echo
echo "The MTA listens on 127.0.0.1:$port. Try:"
echo "  swaks --server 127.0.0.1:$port --to root@localhost"
echo "  $build/tools/ctl/mtactl -c $dir/etc queue"
echo "  $build/tools/ctl/mtactl -c $dir/etc config -n"
echo "Ctrl-C stops it."
wait
