#!/bin/sh
# `npm test` runs this first (the pretest script). The tests start real
# programs: redis-server, promtool and prometheus (Debian/Ubuntu packages
# redis-server and prometheus) and curl (the README examples). Missing ones are
# installed with apt-get when we may (root on Debian/Ubuntu); otherwise we stop
# at once with one line naming the packages, rather than skip any test.
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || missing="$missing prometheus"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "npm test needs these packages installed first:$missing (Debian/Ubuntu: sudo apt-get install$missing)" >&2
  exit 1
fi
echo "installing test tools:$missing" >&2
# $missing is unquoted on purpose: one word per package. dpkg's progress
# lines are dropped; apt-get's errors still reach stderr.
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
  echo "could not install:$missing" >&2
  exit 1
}
