#!/usr/bin/env bash
# Installs tandem's .deb on this machine, which must not have it, checks what an operator gets,
# then purges it and removes the service user it made (Debian keeps system users on purge; a
# test leaves nothing behind). As root; needs man-db.
#
#   bash deploy/test-deb.sh [PACKAGE.deb]   default: builds one with build-deb.sh --debug
#
# Checks: `tandem check` of /etc/tandem/tandem.yaml, as root and as the service user; the
# config is a conffile; `man tandem` and a page per subcommand; the bash completion completes,
# zsh's and fish's load where those shells are installed; the user, group and files; the unit
# passes systemd-analyze verify; the logrotate file parses; after the purge, that nothing is
# left; and postinst's adduser fallback.
set -euo pipefail

cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test-deb.sh: run as root (it installs a package)" >&2; exit 1; }
command -v man >/dev/null || { echo "test-deb.sh: needs man-db (apt-get install man-db)" >&2; exit 1; }
if dpkg-query -W -f='${Status}' tandem 2>/dev/null | grep -q installed ||
  getent passwd tandem >/dev/null || getent group tandem >/dev/null ||
  [ -e /usr/bin/tandem ] || [ -e /etc/tandem ]; then
  echo "test-deb.sh: this machine already has tandem (package, user, group or files): not touching it" >&2
  exit 1
fi

deb=${1:-$(bash deploy/build-deb.sh --debug | tail -n 1)}

failures=0
check() {
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then
    echo "ok: $what"
  else
    echo "FAILED: $what ($*)" >&2
    failures=$((failures + 1))
  fi
}

# From here on the machine has changed: undo it whatever happens.
cleanup() {
  dpkg --purge tandem >/dev/null 2>&1 || true
  getent passwd tandem >/dev/null && userdel tandem
  getent group tandem >/dev/null && groupdel tandem
  return 0
}
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb"

check "tandem check of the installed config" tandem check /etc/tandem/tandem.yaml
check "tandem check's default is the installed config" tandem check
check "the service user can read the config" \
  setpriv --reuid tandem --regid tandem --init-groups tandem check
check "tandem --version names a commit" bash -c "tandem --version | grep -E '^tandem [0-9.]+ \\(([0-9a-f]{12}(-dirty)?|unknown commit)\\)$'"
check "the config is a conffile" bash -c "dpkg-query -W -f='\${Conffiles}' tandem | grep -q ' /etc/tandem/tandem.yaml '"

check "man tandem" bash -c "MANPAGER=cat man tandem | grep -q 'tandem-check(1)'"
for page in /usr/share/man/man1/tandem-*.1.gz; do
  name=$(basename "$page" .1.gz)
  check "man $name" bash -c "MANPAGER=cat man $name | grep -q '^SYNOPSIS'"
done
[ -e /usr/share/man/man1/tandem-run.1.gz ] || { echo "FAILED: no man page for tandem run" >&2; failures=$((failures + 1)); }

# Bash: the function the file registers completes a subcommand.
check "bash completion completes 'tandem ch'" bash -c '
  source /usr/share/bash-completion/completions/tandem
  COMP_WORDS=(tandem ch) COMP_CWORD=1 COMP_LINE="tandem ch" COMP_POINT=9
  _tandem tandem ch tandem
  [ "${COMPREPLY[*]}" = check ]'
check "zsh completion file" test -s /usr/share/zsh/vendor-completions/_tandem
if command -v zsh >/dev/null; then
  check "zsh completion loads" zsh -c 'autoload -Uz compinit && compinit -u && source /usr/share/zsh/vendor-completions/_tandem'
fi
check "fish completion file" test -s /usr/share/fish/vendor_completions.d/tandem.fish
if command -v fish >/dev/null; then
  check "fish completes 'tandem ch'" bash -c "fish -c 'complete -C\"tandem ch\"' | grep -q '^check'"
fi

check "the tandem user, with no login" bash -c "getent passwd tandem | grep -q ':/nonexistent:/usr/sbin/nologin$'"
check "the tandem group" getent group tandem
check "the unit" test -s /lib/systemd/system/tandem.service
check "the unit runs the packaged binary" grep -q '^ExecStart=/usr/bin/tandem run' /lib/systemd/system/tandem.service
if command -v systemd-analyze >/dev/null; then
  check "systemd-analyze verify finds nothing wrong with the unit" \
    bash -c '[ -z "$(systemd-analyze verify --man=no /lib/systemd/system/tandem.service 2>&1)" ]'
fi
check "the sysusers file" test -s /usr/lib/sysusers.d/tandem.conf
check "/etc/tandem" test -d /etc/tandem
check "the logrotate file parses" logrotate --debug /etc/logrotate.d/tandem

dpkg --purge tandem >/dev/null
for path in /usr/bin/tandem /etc/tandem /lib/systemd/system/tandem.service /etc/logrotate.d/tandem \
  /usr/share/man/man1/tandem.1.gz /usr/share/bash-completion/completions/tandem; do
  check "purged: $path" test ! -e "$path"
done
cleanup

# Where systemd-sysusers is missing (a container without systemd), postinst makes the user
# with adduser: run the package's own postinst with a PATH that has no systemd-sysusers.
scripts=$(mktemp -d)
trap 'cleanup; rm -rf "$scripts"' EXIT
dpkg-deb --control "$deb" "$scripts/control"
mkdir "$scripts/bin"
ln -s "$(command -v getent)" "$scripts/bin/getent"
check "postinst without systemd-sysusers" env PATH="$scripts/bin:/usr/sbin:/sbin" \
  /bin/sh "$scripts/control/postinst" configure
check "... made the tandem user with adduser" \
  bash -c "getent passwd tandem | grep -q ':/nonexistent:/usr/sbin/nologin$'"
cleanup
check "no tandem user left" bash -c '! getent passwd tandem && ! getent group tandem'

if [ "$failures" -gt 0 ]; then
  echo "test-deb.sh: $failures check(s) failed" >&2
  exit 1
fi
echo "test-deb.sh: every check passed ($deb)"
