"""Shell commands judged on their parsed form: which look dangerous, which only read.

The denylist names a reason for the user ("recursive or forced delete"); the read-only
allowlist is the guard that matters: a line submitted to a terminal runs without asking only
when every command in it is on that list. Both read `agent.shell.Parsed`, never raw text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from agent.shell import SHELLS, SHELLS_TCSH, Command, Parsed, Word

# Programs that fetch from the network (their output piped into a shell runs a download).
DOWNLOADERS = frozenset(
    {
        "curl",
        "wget",
        "fetch",
        "aria2c",
        "http",
        "https",
        "xh",
        "lwp-request",
        "nc",
        "ncat",
        "socat",
        "ftp",
        "tftp",
        "scp",
        "rsync",
    }
)
# Interpreters that run code given on the command line, and the option that gives it.
INTERPRETERS: dict[str, tuple[str, ...]] = {
    "python": ("-c",),
    "perl": ("-e", "-E"),
    "ruby": ("-e",),
    "node": ("-e", "--eval", "-p", "--print"),
    "nodejs": ("-e", "--eval", "-p", "--print"),
    "deno": ("eval",),
    "bun": ("-e", "--eval"),
    "php": ("-r",),
    "lua": ("-e",),
    "luajit": ("-e",),
    "rscript": ("-e",),
    "tclsh": (),
    "pwsh": ("-c", "-command"),
    "powershell": ("-c", "-command"),
    "osascript": ("-e",),
    "awk": (),
    "gawk": (),
    "mawk": (),
    "nawk": (),
}
# Code that deletes, overwrites or runs other programs, in any of those languages.
_DESTRUCTIVE_CODE = re.compile(
    r"rmtree|\brm_r|\brm\b|unlink|rmdir|\bremove\s*\(|os\s*\.\s*(remove|system|exec|spawn|popen"
    r"|kill|truncate|rename|replace)|subprocess|\bpopen\b|\bsystem\s*\(|\bsystem\b\s*['\"]|\bexec"
    r"\s*[(\s'\"]|\bspawn|child_process|execSync|FileUtils|File\s*\.\s*(delete|write)|fs\s*\."
    r"\s*(rm|unlink|rmdir|write|truncate)|\.(rm|unlink|rmdir|writeFile|truncate)(Sync)?\s*\(|shutil|Remove-Item|Format-Volume|`|\bopen\s*\([^)]*,"
    r"\s*['\"][wa+]|\bwrite_(text|bytes)\b|\bkill\b|__import__|\beval\b",
    re.IGNORECASE,
)
_BLOCK_DEVICE = re.compile(r"^/dev/(sd|hd|vd|xvd|nvme|mmcblk|disk|loop|dm-|md\d|mapper/|sr)")
# System folders, and the user's files that run at login or grant access.
_SYSTEM_PATH = re.compile(
    r"^(/+(etc|boot|usr|bin|sbin|lib|lib32|lib64|libx32|root|sys|proc|var/lib|var/spool/cron"
    r"|opt|srv)(/|$)|/+$|~/+\.(bashrc|bash_profile|bash_login|bash_logout|profile|zshrc|zprofile"
    r"|zshenv|zlogin|config/autostart|ssh|gnupg|xinitrc|xprofile|xsession|pam_environment|inputrc"
    r"|config/fish|local/share/applications|local/bin)(/|$))"
)
_HARMLESS_TARGETS = re.compile(r"^/dev/(null|stdout|stderr|tty|fd/\d+)$")
_GIT_GLOBAL_VALUED = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace"})


def _norm(name: str) -> str:
    """Program name for matching: lower case, version suffixes dropped (python3.12 -> python)."""
    low = name.lower()
    if low.endswith(".exe"):
        low = low[:-4]
    return re.sub(r"(?<=[a-z])[0-9.]+$", "", low) if re.match(r"[a-z]+[0-9.]+$", low) else low


def _literal_args(command: Command) -> list[str]:
    return [w.text for w in command.args]


def _options(command: Command) -> tuple[set[str], set[str]]:
    """(short letters, long options) before "--"; "-rf" gives r and f."""
    short: set[str] = set()
    long: set[str] = set()
    for w in command.args:
        t = w.text
        if t == "--":
            break
        if t.startswith("--"):
            long.add(t.split("=", 1)[0].lower())
        elif t.startswith("-") and len(t) > 1:
            short.update(t[1:])
    return short, long


def _long(long: set[str], *full: str) -> bool:
    """Whether a long option, or an unambiguous abbreviation of it (--rec), is present."""
    return any(f.startswith(opt) and len(opt) >= 3 for opt in long for f in full)


def _home(text: str) -> str:
    """$HOME/... and ${HOME}/... read as ~/..."""
    return re.sub(r"^(\$HOME|\$\{HOME\})(?=/|$)", "~", text)


def _system(text: str) -> bool:
    return bool(_SYSTEM_PATH.match(_home(text)))


def _writes(command: Command) -> list[str]:
    """Files the command's redirections open for writing."""
    return [r.target.text for r in command.redirects if r.writes]


def _destinations(command: Command) -> list[str]:
    """Files a copying or writing program writes to (its last argument, or all for tee)."""
    name = _norm(command.program)
    args = [t for t in _literal_args(command) if not t.startswith("-")]
    if name == "tee":
        return args
    if name in ("cp", "mv", "install", "ln", "rsync", "scp") and len(args) >= 2:
        target = [t[3:] for t in _literal_args(command) if t.startswith("-t")]
        return target or [args[-1]]
    if name in ("sed", "perl") and any(
        t.startswith("-i") or t.startswith("--in-place") for t in _literal_args(command)
    ):
        return args[1:]
    if name == "dd":
        return [t[3:] for t in _literal_args(command) if t.startswith("of=")]
    return []


# -- the denylist: one predicate per reason -----------------------------------------------------


def _rm(c: Command) -> bool:
    if _norm(c.program) != "rm":
        return False
    short, long = _options(c)
    return bool(short & set("rRf")) or _long(long, "--recursive", "--force", "--no-preserve-root")


def _find_delete(c: Command) -> bool:
    return _norm(c.program) in ("find", "fd", "fdfind") and any(
        t in ("-delete", "--delete") for t in _literal_args(c)
    )


def _privilege(c: Command) -> bool:
    return _norm(c.program) in (
        "sudo",
        "doas",
        "pkexec",
        "su",
        "run0",
        "sudoedit",
        "gksu",
        "gksudo",
        "kdesu",
        "machinectl",
    )


def _format(c: Command) -> bool:
    name = _norm(c.program)
    return bool(
        re.fullmatch(r"mkfs(\..+)?|mke2fs|mkswap|mkntfs|mkdosfs|mkexfatfs|mkfs\w*", name)
        or name
        in (
            "fdisk",
            "sfdisk",
            "gdisk",
            "sgdisk",
            "cfdisk",
            "parted",
            "wipefs",
            "blkdiscard",
            "mdadm",
            "cryptsetup",
            "zpool",
            "lvremove",
            "vgremove",
        )
    )


def _dd(c: Command) -> bool:
    return _norm(c.program) == "dd" and any(t.startswith("of=") for t in _literal_args(c))


def _block_device(c: Command) -> bool:
    return any(_BLOCK_DEVICE.match(t) for t in _writes(c) + _destinations(c))


def _runs_code(c: Command) -> bool:
    """Whether the program is a shell or interpreter (reading code from stdin or a file)."""
    name = _norm(c.program)
    return (
        name in SHELLS
        or name in SHELLS_TCSH
        or name in INTERPRETERS
        or name in ("source", ".", "eval")
    )


def _piped_download(c: Command) -> bool:
    return _runs_code(c) and bool(DOWNLOADERS & {_norm(p) for p in c.upstream})


def _runs_download(c: Command) -> bool:
    return _runs_code(c) and bool(DOWNLOADERS & {_norm(p) for p in c.runs()})


def _shutdown(c: Command) -> bool:
    name = _norm(c.program)
    args = [t.lower() for t in _literal_args(c)]
    if name in (
        "shutdown",
        "reboot",
        "poweroff",
        "halt",
        "logout",
        "gnome-session-quit",
        "xfce4-session-logout",
        "lxsession-logout",
        "lxqt-leave",
        "pm-suspend",
        "pm-hibernate",
        "pm-suspend-hybrid",
        "systemd-inhibit",
        "kexec",
    ):
        return True
    if name in ("init", "telinit"):
        return any(a in ("0", "6", "1", "s", "single") for a in args)
    if name == "systemctl":
        return any(
            a
            in (
                "poweroff",
                "reboot",
                "halt",
                "suspend",
                "hibernate",
                "hybrid-sleep",
                "suspend-then-hibernate",
                "kexec",
                "soft-reboot",
                "rescue",
                "emergency",
                "isolate",
                "default",
                "exit",
            )
            for a in args
        )
    if name == "loginctl":
        return any(
            re.match(r"(terminate|kill|poweroff|reboot|suspend|hibernate|lock)", a) for a in args
        )
    return False


def _permissions(c: Command) -> bool:
    if _norm(c.program) not in ("chmod", "chown", "chgrp", "chattr", "setfacl"):
        return False
    short, long = _options(c)
    targets = [t for t in _literal_args(c) if not t.startswith("-")]
    return "R" in short or _long(long, "--recursive") or any(_system(t) for t in targets[1:])


def _kill_all(c: Command) -> bool:
    name = _norm(c.program)
    if name in ("killall", "killall5", "pkill", "xkill"):
        return True
    args = _literal_args(c)
    # PID -1 is every process the user may signal; PID 1 is init.
    return name == "kill" and ("-1" in args[1:] or args[-1:] == ["-1"] or "1" in args)


def _erase(c: Command) -> bool:
    return _norm(c.program) in ("shred", "srm", "wipe", "scrub", "secure-delete", "sfill")


def _git(c: Command) -> bool:
    if _norm(c.program) != "git":
        return False
    args = _literal_args(c)
    k = 0
    while k < len(args) and args[k].startswith("-"):
        k += 2 if args[k] in _GIT_GLOBAL_VALUED else 1
    if k >= len(args):
        return False
    sub, rest = args[k], args[k + 1 :]
    short = {ch for t in rest if t.startswith("-") and not t.startswith("--") for ch in t[1:]}
    long = {t.split("=", 1)[0] for t in rest if t.startswith("--")}
    if sub == "push":
        return bool(
            short & {"f", "d"}
            or long
            & {
                "--force",
                "--force-with-lease",
                "--force-if-includes",
                "--delete",
                "--mirror",
                "--prune",
            }
            or any(t.startswith(("+", ":")) for t in rest)
        )
    if sub == "reset":
        return "--hard" in long or "--merge" in long or "--keep" in long
    if sub == "clean":
        return "f" in short or "--force" in long
    if sub == "branch":
        return (
            "D" in short
            or ("--delete" in long and "--force" in long)
            or ("d" in short and "f" in short)
        )
    if sub == "stash":
        return any(t in ("drop", "clear") for t in rest)
    if sub == "checkout":
        return "f" in short or "--force" in long or "--" in rest or "." in rest
    if sub in ("restore", "filter-branch", "filter-repo", "update-ref", "replace"):
        return True
    if sub == "reflog":
        return any(t in ("expire", "delete") for t in rest)
    if sub == "gc":
        return any(t.startswith("--prune") for t in rest)
    return False


def _system_file(c: Command) -> bool:
    return any(_system(t) for t in _writes(c) + _destinations(c))


def _truncate(c: Command) -> bool:
    name = _norm(c.program)
    if name == "truncate":
        return True
    if name in ("", ":", "true", "false"):  # `> file`: the redirection alone empties the file
        return any(not _HARMLESS_TARGETS.match(t) for t in _writes(c))
    return name == "cp" and _literal_args(c)[:1] == ["/dev/null"]


def _to_null(c: Command) -> bool:
    return _norm(c.program) == "mv" and _destinations(c) == ["/dev/null"]


def _accounts(c: Command) -> bool:
    return _norm(c.program) in (
        "passwd",
        "useradd",
        "userdel",
        "usermod",
        "visudo",
        "vipw",
        "vigr",
        "chpasswd",
        "chsh",
        "chfn",
        "groupadd",
        "groupdel",
        "groupmod",
        "gpasswd",
        "adduser",
        "deluser",
        "addgroup",
        "delgroup",
        "newusers",
        "chage",
    )


def _crontab(c: Command) -> bool:
    if _norm(c.program) != "crontab":
        return False
    short, _ = _options(c)
    files = [t for t in _literal_args(c) if not t.startswith("-") or t == "-"]
    return "r" in short or bool(files)


def _interpreter(c: Command) -> bool:
    name = _norm(c.program)
    if name not in INTERPRETERS:
        return False
    flags = INTERPRETERS[name]
    args = list(c.args)
    for k, w in enumerate(args):
        low = w.text.lower()
        code: Word | None = None
        if flags and low in flags and k + 1 < len(args):
            code = args[k + 1]
        elif flags and any(low.startswith(f) and len(low) > len(f) for f in flags if len(f) == 2):
            code = Word(w.text[2:], w.literal)  # -c'code' written together
        elif not flags and not low.startswith("-"):
            code = w  # awk and tclsh: the first operand is the program
        if code is not None:
            return bool(_DESTRUCTIVE_CODE.search(code.text))
    return False


# (reason, predicate): the first that matches names the reason shown to the user.
DANGEROUS: tuple[tuple[str, Callable[[Command], bool]], ...] = (
    ("recursive or forced delete", _rm),
    ("find deleting files", _find_delete),
    ("privilege escalation", _privilege),
    ("filesystem format or partitioning", _format),
    ("raw disk write (dd)", _dd),
    ("write to a block device", _block_device),
    ("download piped to a shell", _piped_download),
    ("shell running a download", _runs_download),
    ("shutdown, reboot or logout", _shutdown),
    ("recursive or system-wide permission change", _permissions),
    ("killing every process", _kill_all),
    ("secure erase", _erase),
    ("history-rewriting git command", _git),
    ("overwriting a system file", _system_file),
    ("truncating a file", _truncate),
    ("moving files into /dev/null", _to_null),
    ("account change", _accounts),
    ("crontab removal", _crontab),
    ("interpreter running destructive code", _interpreter),
)


def dangerous(parsed: Parsed) -> str | None:
    """The reason of the first denylist rule any command of the line matches, or None."""
    for reason, matches in DANGEROUS:  # the worst first, whichever command it is in
        if any(matches(command) for command in parsed.commands):
            return reason
    return None


# -- the read-only allowlist --------------------------------------------------------------------

# Programs (or program + first words) that only read; `find`, `sort`, `date`, `hostname` and
# `env` are further restricted below to their read-only forms.
DEFAULT_TERMINAL_ALLOW: tuple[str, ...] = (
    "ls",
    "cat",
    "pwd",
    "echo",
    "printf",
    "head",
    "tail",
    "wc",
    "grep",
    "egrep",
    "fgrep",
    "find",
    "which",
    "whereis",
    "type",
    "date",
    "whoami",
    "id",
    "groups",
    "uname",
    "hostname",
    "uptime",
    "df",
    "du",
    "free",
    "ps",
    "file",
    "stat",
    "basename",
    "dirname",
    "realpath",
    "readlink",
    "true",
    "false",
    "cd",
    "diff",
    "cmp",
    "md5sum",
    "sha1sum",
    "sha256sum",
    "sha512sum",
    "cut",
    "tr",
    "nl",
    "sort",
    "printenv",
    "env",
    "clear",
    "lsblk",
    "nproc",
    "locale",
    "tty",
    "cal",
    "git status",
)
_HOSTNAME_READS = frozenset({"-f", "-s", "-d", "-i", "-I", "-A", "-a", "--fqdn", "--long",
                             "--short", "--domain", "--ip-address", "--all-ip-addresses",
                             "--all-fqdns", "--alias"})  # fmt: skip
_TRUSTED_DIRS = ("/bin/", "/usr/bin/", "/usr/local/bin/", "/sbin/", "/usr/sbin/")


def parse_allow(entries: Iterable[str]) -> frozenset[tuple[str, ...]]:
    """Allowlist entries as word tuples ("git status" -> ("git", "status"))."""
    return frozenset(tuple(e.split()) for e in entries if e.split())


def _restricted(c: Command) -> str | None:
    """Why an allowed program's options here do more than read, or None."""
    name = c.program
    args = c.args
    texts = _literal_args(c)
    short, long = _options(c)
    if name in ("find", "sort") and not all(w.literal for w in args):
        return f"{name} with arguments that expand (a file named -delete would be an option)"
    if name == "find":
        bad = [
            t
            for t in texts
            if t
            in (
                "-delete",
                "-exec",
                "-execdir",
                "-ok",
                "-okdir",
                "-fprint",
                "-fprint0",
                "-fprintf",
                "-fls",
            )
        ]
        return f"find {bad[0]}" if bad else None
    if name == "sort" and (
        "o" in short or _long(long, "--output") or _long(long, "--compress-program")
    ):
        return "sort writing a file"
    if name == "date" and ("s" in short or _long(long, "--set")):
        return "date setting the clock"
    if name == "hostname" and any(t not in _HOSTNAME_READS for t in texts):
        return "hostname setting the name"
    if name == "env" and args:
        return "env running a command"
    if name == "printf" and "v" in short:
        return "printf setting a variable"
    if name == "file" and ("C" in short or _long(long, "--compile")):
        return "file writing a compiled magic file"

    return None


def shown(text: str, limit: int = 40) -> str:
    """Model-made text fit for a one-line reason: invisible and control characters escaped."""
    out = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def not_read_only(parsed: Parsed, allow: frozenset[tuple[str, ...]]) -> str | None:
    """Why the line may do more than read (one short phrase), or None when all of it only reads."""
    if parsed.unclear:
        return f"it has {parsed.unclear[0]}"
    if not parsed.commands:
        return None
    for c in parsed.commands:
        if c.assignments:
            return f"it sets {shown(c.assignments[0].split('=', 1)[0].rstrip('+'))}"
        for r in c.redirects:
            if r.writes and not (r.target.literal and _HARMLESS_TARGETS.match(r.target.text)):
                return f"it writes to {shown(r.target.text) or 'a file'}"
        if not c.argv:
            continue
        program = c.argv[0]
        if not program.literal:
            return "its program name is computed"
        if "/" in program.text and program.text.rsplit("/", 1)[0] + "/" not in _TRUSTED_DIRS:
            return f"it runs {shown(program.text)}"  # /bin/../tmp/ls is not /bin/ls
        words = tuple(w.text for w in c.argv)
        words = (c.program, *words[1:])
        if not any(words[: len(entry)] == entry for entry in allow):
            return f"{shown(c.program)} is not on the read-only list"
        why = _restricted(c)
        if why is not None:
            return why
    return None
