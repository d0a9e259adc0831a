#!/usr/bin/env bash
# Accounts for the privilege-hop tests (root only, idempotent):
#   mfs-deploy  login user with a password; its sudo demands a tty
#               (requiretty, use_pty) and the password
#   mfs-webapp  a non-root sudo target
#   mfs-su      a su target with its own password
#   mfs-intruder  another local user, no sudo: squats the daemon's and the
#               shims' sockets in fakessh/tests/trust_local.rs, knocks on forward
#               listeners in fakessh/tests/trust_gaps.rs
#   mfs-tcsh, mfs-fish, mfs-zsh, mfs-ksh, mfs-dash
#               ssh logins whose login shell is that shell
#   mfs-hostile an ssh login (bash) whose rc file fakessh/tests/trust_secrets.rs
#               writes, to play a remote that prints escape sequences
#   mfs-chroot  an ssh login whose home and /bin/sh exist only inside the
#               busybox chroot of fakessh/tests/reach_platforms.rs
#   mfs-attacker  an unprivileged local user, no sudo target, no login:
#               the attacker of fakessh/tests/trust_cache.rs
# The passwords are test fixtures, also known to test-kit/src/accounts.rs.
set -euo pipefail
make_user() { id "$1" >/dev/null 2>&1 || useradd -m -s /bin/bash "$1"; }
make_user mfs-deploy
make_user mfs-webapp
make_user mfs-su
id mfs-attacker >/dev/null 2>&1 || useradd -M -d /nonexistent -s /usr/sbin/nologin mfs-attacker
make_user mfs-intruder
echo 'mfs-deploy:deploy-pw-4711' | chpasswd
echo 'mfs-su:su-pw-0815' | chpasswd
rules=/etc/sudoers.d/mitogen-fakessh-tests
cat > "$rules.tmp" <<'RULES'
Defaults:mfs-deploy requiretty
Defaults:mfs-deploy use_pty
Defaults:mfs-deploy !lecture
Defaults:mfs-deploy passwd_tries=3
mfs-deploy ALL=(ALL:ALL) ALL
RULES
chmod 440 "$rules.tmp"
visudo -c -f "$rules.tmp" >/dev/null
mv "$rules.tmp" "$rules"
if [ -x /usr/bin/doas ]; then
  echo 'permit mfs-deploy as root' > /etc/doas.conf
  chmod 600 /etc/doas.conf
fi

# Logins with another login shell. '*' is no password but not a locked
# account (sshd refuses a locked one even with a key).
shell_user() {
  id "$1" >/dev/null 2>&1 || useradd -m -s "$2" "$1"
  usermod -s "$2" -p '*' "$1"
}
shell_user mfs-tcsh /usr/bin/tcsh
shell_user mfs-fish /usr/bin/fish
shell_user mfs-zsh /usr/bin/zsh
shell_user mfs-ksh /usr/bin/ksh
shell_user mfs-dash /bin/dash
shell_user mfs-hostile /bin/bash
id mfs-chroot >/dev/null 2>&1 || useradd -M -d /home/mfs-chroot -s /bin/sh mfs-chroot
usermod -p '*' mfs-chroot

# Hostile remotes of fakessh/tests/remote_floods.rs: 1 GiB without a newline where
# our host reads lines.
#   mfs-flood     an ssh login whose ~/.bashrc (which bash runs for sshd's
#                 `bash -c COMMAND`) writes it to stderr before any command
#   mfs-lectured  sudo with a password (lectured-pw-2718) whose lecture,
#                 shown on the pty before every prompt, is one line of
#                 128 MiB (a pty moves some 15 MB/s)
flood_dir=/var/lib/mitogen-fakessh-tests
mkdir -p "$flood_dir"
shell_user mfs-flood /bin/bash
cat > /home/mfs-flood/.bashrc <<'BASHRC'
# .ci/accounts.sh: a line of 1 GiB on stderr before every command.
head -c 1073741824 /dev/zero | tr '\0' x >&2
echo ' end of the flood' >&2
BASHRC
chown mfs-flood: /home/mfs-flood/.bashrc
make_user mfs-lectured
echo 'mfs-lectured:lectured-pw-2718' | chpasswd
lecture="$flood_dir/lecture-128MiB"
if [ "$(stat -c %s "$lecture" 2>/dev/null)" != 134217728 ]; then
  head -c 134217728 /dev/zero | tr '\0' x > "$lecture.tmp"
  mv -f "$lecture.tmp" "$lecture"
fi
chmod 644 "$lecture"
rules=/etc/sudoers.d/mitogen-fakessh-floods
cat > "$rules.tmp" <<RULES
Defaults:mfs-lectured lecture=always
Defaults:mfs-lectured timestamp_timeout=0
Defaults:mfs-lectured lecture_file=$lecture
mfs-lectured ALL=(ALL:ALL) ALL
RULES
chmod 440 "$rules.tmp"
visudo -c -f "$rules.tmp" >/dev/null
mv "$rules.tmp" "$rules"
