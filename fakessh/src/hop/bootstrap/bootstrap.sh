#!/bin/sh
# The bootstrap script (see script.rs for what it does and why it is safe).
#
# This file is a template: the host sends it as one line (script.rs,
# `one_line`), so it must keep to these rules, which the tests check:
# - comments only on lines of their own (they are dropped), no quote ('),
#   `!` or backslash anywhere else, no here-document; indentation is dropped;
# - where one line is joined to the next is decided by how the line ends
#   (`then`, `do`, `else`, `in`, `;;`, `{`, `||`, `&&`: a blank; else ` ; `).
# What the host fills in, and nothing else:
# - `# @begin NAME` ... `# @end NAME`: lines kept only when the host says so
#   (`privileged`, `compress`; `checks` always, a block so tests can run it);
# - the line with @PLATFORM@: written once per agent the host can upload,
#   with @PLATFORM@ (`uname -sm`), @SHA256@ (hex) and @SIZE@ (bytes);
# - @PLACES@: the places to try, as shell words; @AGENT_ARG@, @PROBE_ARG@:
#   the agent's arguments.

# @begin privileged
# After a privilege change the inherited HOME and XDG_* may still be the
# previous user's: take the home from the passwd database.
unset XDG_CACHE_HOME XDG_RUNTIME_DIR
i="$(id -u)"
h="$(getent passwd "$i" 2>/dev/null | cut -d: -f6)"
# shellcheck disable=SC2034 # every field is named, only the sixth is used
[ -n "$h" ] || while IFS=: read -r a b c e f g k ; do [ "$c" = "$i" ] && h="$g" && break ; done < /etc/passwd
HOME="$h"
export HOME
# @end privileged
set -f
unset CDPATH
u="$(uname -sm 2>&1)" || { echo "MFS-ERROR uname -sm failed: $u" ; exit 1 ; }
case "$u" in
  "@PLATFORM@") s=@SHA256@ l=@SIZE@ ;;
  *) echo "MFS-NOAGENT $u" ; exit 1 ;;
esac
sumin() { sha256sum 2>/dev/null || shasum -a 256 2>/dev/null || openssl dgst -sha256 -r 2>/dev/null ; }
i="$(id -u)"
# @begin checks
# `wr MODE`: MODE (as `ls -l` shows it) is writable by group or others.
wr() { case "$1" in ?????w*|????????w*) return 0 ;; esac ; return 1 ; }
# `info PATH`: mode `m` and owner `o` of what PATH resolves to.
# shellcheck disable=SC2046 # the words of ls are wanted (and set -f is on)
info() { m="" ; o="" ; set -- $(ls -ldnL "$1" 2>/dev/null) ; m="$1" ; o="$3" ; }
# `place DIR`: DIR is safe (script.rs says when); `p` is its physical path,
# or `r` says why not.
place() {
  p=""
  test -L "$1" && { r="a symbolic link" ; return 1 ; }
  [ -d "$1" ] || { r="missing" ; return 1 ; }
  p="$(cd -P "$1" 2>/dev/null && pwd -P)" || { r="cannot enter it" ; return 1 ; }
  info "$p"
  case "$m" in d*) ;; *) r="not a directory" ; return 1 ;; esac
  [ "$o" = "$i" ] || { r="not owned by uid $i" ; return 1 ; }
  wr "$m" && { r="writable by group or others" ; return 1 ; }
  q="$p"
  while [ -n "$q" ] ; do
    q="${q%/*}"
    info "${q:-/}"
    case "$o" in 0|"$i") ;; *) r="${q:-/} is owned by another user" ; return 1 ;; esac
    wr "$m" || continue
    [ "$o" = 0 ] && case "$m" in ?????????[tT]*) continue ;; esac
    r="${q:-/} is writable by others" ; return 1
  done
  return 0
}
# `opened FILE`: fd 3 holds FILE, a file of ours whose checksum is `$s`;
# `e` is the name that execs fd 3.
opened() {
  [ -f "$1" ] && [ -r "$1" ] || return 1
  exec 3< "$1"
  e=/proc/self/fd/3
  info "$e"
  [ -n "$m" ] || { e=/dev/fd/3 ; info "$e" ; }
  [ -n "$m" ] || { e="$1" ; info "$e" ; }
  if [ "$o" = "$i" ] && case "$m" in -*) true ;; *) false ;; esac ; then
    wr "$m" || { [ "$(sumin <&3 | cut -c1-64)" = "$s" ] && return 0 ; }
  fi
  exec 3<&-
  return 1
}
# @end checks
# A warm start: a copy that checks out, in a place where it ran before.
# shellcheck disable=SC2043 # the host writes the places in for @PLACES@
for d in @PLACES@ ; do
  if place "$d" && [ -f "$p/.ok-$s" ] && opened "$p/$s" ; then
    echo "MFS-CACHED $p"
    echo MFS-EXEC
    exec "$e" @AGENT_ARG@
  fi
done
# The upload runs under umask 077; the agent it stores starts with the
# session's own umask again (`um`), so commands get the same umask whether
# this run uploaded the agent or found it cached.
um="$(umask)"
umask 077
z=raw
# @begin compress
# Tried, not looked up: busybox's `command -v` names applets that are not
# there.
[ "$(printf x | gzip -c 2>/dev/null | gzip -dc 2>/dev/null)" = x ] && z=gz
# @end compress
t=""
f=""
why=""
# shellcheck disable=SC2317 # run by the trap
gone() { rm -f "$f" ; }
trap gone EXIT HUP INT PIPE TERM
# shellcheck disable=SC2043 # the host writes the places in for @PLACES@
for d in @PLACES@ ; do
  mkdir -p "$d" 2>/dev/null || test -L "$d" || { why="$why $d (cannot create it);" ; continue ; }
  place "$d" || { why="$why $d ($r);" ; continue ; }
  chmod 700 "$p"
  f="$p/.$s.$$"
  if opened "$p/$s" ; then
    :
  elif [ -z "$t" ] ; then
    n=0
    while : ; do
      n=$((n+1))
      echo "MFS-UPLOAD $z $u"
      read -r len || exit 1
      [ "$len" -gt 0 ] 2>/dev/null || { echo "MFS-ERROR the agent upload lost its framing (a failing head, gzip, tee or cat here?)" ; exit 1 ; }
      if [ "$z" = gz ] ; then
        r="$(head -c "$len" | { gzip -dc 2>/dev/null ; cat >/dev/null ; } | tee "$f" 2>/dev/null | sumin | cut -c1-64)"
      else
        r="$(head -c "$len" | { tee "$f" 2>/dev/null ; cat >/dev/null ; } | sumin | cut -c1-64)"
      fi
      [ "$r" = "$s" ] && break
      [ -s "$f" ] || { echo "MFS-ERROR nothing of the agent upload arrived (a failing head, gzip, tee or sha256sum here?)" ; exit 1 ; }
      rm -f "$f"
      [ "$n" -lt 2 ] || { echo "MFS-ERROR the agent arrived corrupted twice (checksum mismatch)" ; exit 1 ; }
    done
    w="$(wc -c < "$f" 2>/dev/null)"
    # shellcheck disable=SC2015 # the braces run when any step before fails
    [ "$((w+0))" = "$l" ] && chmod 700 "$f" && mv -f "$f" "$p/$s" || { rm -f "$f" ; why="$why $d (cannot store it);" ; continue ; }
    opened "$p/$s" || { why="$why $d (the agent stored there does not check out);" ; continue ; }
  else
    # shellcheck disable=SC2015 # the braces run when any step before fails
    cp "$t" "$f" && chmod 700 "$f" && mv -f "$f" "$p/$s" && opened "$p/$s" || { rm -f "$f" ; why="$why $d (cannot copy it there);" ; continue ; }
  fi
  t="$p/$s"
  if [ "$("$e" @PROBE_ARG@ 2>/dev/null)" = MFS-OK ] ; then
    : > "$p/.ok-$s"
    echo "MFS-STORED $p"
    echo MFS-EXEC
    umask "$um"
    exec "$e" @AGENT_ARG@
  fi
  exec 3<&-
  why="$why $d (cannot execute there);"
done
echo "MFS-ERROR the agent cannot run in any place tried:$why set one with --agent-dir DIR"
exit 1
