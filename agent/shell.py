"""A reader of shell command lines, split as bash would split them, for the risk rules.

It never runs anything. It splits a line into simple commands (words, assignments,
redirections), follows substitutions and the commands that run other commands (`bash -c`,
`eval`, `xargs`, `sudo`, `env`, `find -exec`, ...), and says what it could not follow: the
rules treat anything unclear as a command they cannot vouch for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

# Nesting deeper than this (bash -c "bash -c '...'") is not followed: unclear.
MAX_DEPTH = 8

# Shells: `NAME -c STRING` runs STRING; anything else they run is a script the guard cannot read.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "ash", "busybox", "csh"})
SHELLS_TCSH = frozenset({"tcsh", "rbash"})

_RESERVED_SKIP = frozenset(
    {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!"}
)
_RESERVED_UNCLEAR = frozenset({"case", "esac", "function", "coproc", "select", "((", "))"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")
_GLOB = frozenset("*?[")
_ANSI_C = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}


@dataclass(frozen=True, slots=True)
class Word:
    """One word after quote removal; `literal` when no expansion or glob can change it."""

    text: str
    literal: bool = True
    # Programs run by substitutions inside the word ($(...), `...`, <(...)), basenames.
    runs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Redirect:
    """A redirection: operator (">", ">>", "<", "<<", "&>", ">&", ...) and its target."""

    op: str
    target: Word

    @property
    def writes(self) -> bool:
        """Whether it opens a file for writing (duplicating a descriptor does not)."""
        if self.op in (">&", "<&"):
            return self.op == ">&" and not re.fullmatch(r"\d+-?|-", self.target.text)
        return self.op in (">", ">>", ">|", "&>", "&>>", "<>")


@dataclass(frozen=True, slots=True)
class Command:
    """One simple command: its words, the assignments before it, its redirections."""

    argv: tuple[Word, ...] = ()
    assignments: tuple[str, ...] = ()
    redirects: tuple[Redirect, ...] = ()
    # The commands that run this one, outermost first ("sudo", "bash -c", "xargs", ...).
    via: tuple[str, ...] = ()
    # Programs of the earlier stages of its pipeline (basenames): "curl" in `curl x | sh`.
    upstream: tuple[str, ...] = ()

    @property
    def program(self) -> str:
        """The program's basename ("rm" for /bin/rm), or "" for a bare assignment/redirection."""
        return basename(self.argv[0].text) if self.argv else ""

    @property
    def args(self) -> tuple[Word, ...]:
        """The words after the program."""
        return self.argv[1:]

    def runs(self) -> tuple[str, ...]:
        """Programs run by substitutions in its words and redirections."""
        found = [p for w in self.argv for p in w.runs]
        found += [p for r in self.redirects for p in r.target.runs]
        return tuple(found)


@dataclass(frozen=True, slots=True)
class Parsed:
    """Every simple command of a line, nested ones included, and what could not be followed."""

    commands: tuple[Command, ...] = ()
    unclear: tuple[str, ...] = ()


def basename(program: str) -> str:
    """The name a path runs ("/usr/bin/rm" -> "rm"); case kept."""
    return program.rstrip("/").rsplit("/", 1)[-1] if "/" in program.rstrip("/") else program


def parse(line: str, depth: int = 0) -> Parsed:
    """All commands the line would run, as far as a reader without running it can tell."""
    if depth > MAX_DEPTH:
        return Parsed((), ("commands nested too deeply to follow",))
    lexer = _Lexer(line, depth)
    tokens = lexer.tokens()
    builder = _Builder(depth)
    builder.build(tokens)
    # A line that ends in a backslash, a pipe or && / || continues on the next one.
    body = line.rstrip("\n")
    slashes = len(body) - len(body.rstrip("\\"))
    last = [t for t in tokens if not (t.kind == "op" and t.value == "\n")][-1:]
    if slashes % 2 or (last and last[0].kind == "op" and last[0].value in ("|", "|&", "&&", "||")):
        builder.unclear.append("a line that continues on the next one")
    return Parsed(tuple(lexer.nested + builder.commands), tuple(lexer.unclear + builder.unclear))


# -- lexing -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Tok:
    kind: str  # "word", "op", "redir"
    value: str = ""
    word: Word | None = None


class _Lexer:
    """Characters to words and operators; substitutions are parsed as they are met."""

    def __init__(self, text: str, depth: int) -> None:
        self.s, self.i, self.depth = text, 0, depth
        self.nested: list[Command] = []
        self.unclear: list[str] = []

    def tokens(self, close: str | None = None) -> list[_Tok]:
        """Tokens up to the end, or up to an unquoted `close` (")" of a substitution)."""
        out: list[_Tok] = []
        s = self.s
        depth = 0  # "(" subshells inside a $( ... ) are balanced before its ")"
        while self.i < len(s):
            c = s[self.i]
            if c in " \t":
                self.i += 1
            elif c == "\\" and s[self.i + 1 : self.i + 2] == "\n":
                self.i += 2
            elif c == "#" and (self.i == 0 or s[self.i - 1] in " \t\n;&|()"):
                while self.i < len(s) and s[self.i] != "\n":
                    self.i += 1
            elif c == "\n":
                out.append(_Tok("op", "\n"))
                self.i += 1
            elif close is not None and c == ")" and depth == 0:
                self.i += 1
                return out
            elif (
                c in "<>"
                or (c == "&" and s[self.i + 1 : self.i + 2] == ">")
                or (c.isdigit() and re.match(r"\d+[<>]", s[self.i :]))
            ):
                if c in "<>" and s[self.i + 1 : self.i + 2] == "(":
                    out.append(_Tok("word", word=self._word()))  # <(...) / >(...)
                else:
                    out.append(self._redirect())
            elif c in "|&;()":
                op = self._operator()
                depth += {"(": 1, ")": -1}.get(op, 0)
                out.append(_Tok("op", op))
            else:
                out.append(_Tok("word", word=self._word()))
        if close is not None:
            self.unclear.append("an unclosed substitution")
        return out

    def _operator(self) -> str:
        s, i = self.s, self.i
        for op in (";;&", ";;", ";&", "&&", "||", "|&", "|", "&", ";", "(", ")"):
            if s.startswith(op, i):
                self.i += len(op)
                return op
        raise AssertionError(s[i])  # the caller only calls on | & ; ( )

    def _redirect(self) -> _Tok:
        m = re.match(r"\d*(<<<|<<-|<<|<>|<&|>>|>&|>\||>|<|&>>|&>)", self.s[self.i :])
        assert m is not None
        op = m.group(1)
        self.i += m.end()
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1
        if op in ("<<", "<<-"):
            self.unclear.append("a here-document")
        if self.i >= len(self.s) or self.s[self.i] in "\n;&|()<>":
            self.unclear.append(f"a redirection {op} without a target")
            return _Tok("redir", op, Word("", False))
        return _Tok("redir", op, self._word())

    def _word(self) -> Word:
        """One word: quotes removed, escapes applied, expansions kept as written."""
        s = self.s
        text: list[str] = []
        literal = True
        runs: list[str] = []

        while self.i < len(s):
            c = s[self.i]
            if c in " \t\n;&|()" or (c in "<>" and s[self.i + 1 : self.i + 2] != "("):
                break
            if c in "<>":  # process substitution <(...) >(...)
                self.i += 2
                runs += self._substitution(")")
                literal = False
                text.append(f"{c}(...)")
            elif c == "\\":
                nxt = s[self.i + 1 : self.i + 2]
                if nxt == "\n":
                    self.i += 2
                    continue
                text.append(nxt)
                self.i += 2
            elif c == "'":
                end = s.find("'", self.i + 1)
                if end < 0:
                    self.unclear.append("an unclosed quote")
                    end = len(s)
                text.append(s[self.i + 1 : end])
                self.i = end + 1
            elif c == '"':
                self.i += 1
                lit = self._double_quoted(text, runs)
                literal = literal and lit
            elif c == "$":
                lit = self._dollar(text, runs, quoted=False)
                literal = literal and lit
            elif c == "`":
                self.i += 1
                runs += self._backticks()
                literal = False
                text.append("`...`")
            else:
                if c in _GLOB or (
                    c == "{" and "}" in s[self.i :] and ("," in s[self.i :] or ".." in s[self.i :])
                ):
                    literal = False
                if c == "!" and self._history(self.i):
                    self.unclear.append("history expansion (!)")
                    literal = False
                text.append(c)
                self.i += 1
        return Word("".join(text), literal, tuple(runs))

    def _history(self, i: int) -> bool:
        """Whether "!" here starts a history expansion in an interactive bash."""
        nxt = self.s[i + 1 : i + 2]
        return nxt not in ("", " ", "\t", "\n", "=", "(")

    def _double_quoted(self, text: list[str], runs: list[str]) -> bool:
        s, literal = self.s, True
        while self.i < len(s):
            c = s[self.i]
            if c == '"':
                self.i += 1
                return literal
            if c == "\\" and s[self.i + 1 : self.i + 2] in ('"', "\\", "$", "`", "\n"):
                if s[self.i + 1] != "\n":
                    text.append(s[self.i + 1])
                self.i += 2
            elif c == "$":
                literal = self._dollar(text, runs, quoted=True) and literal
            elif c == "`":
                self.i += 1
                runs += self._backticks()
                literal = False
                text.append("`...`")
            else:
                if c == "!" and self._history(self.i):
                    self.unclear.append("history expansion (!)")
                    literal = False
                text.append(c)
                self.i += 1
        self.unclear.append("an unclosed quote")
        return False

    def _dollar(self, text: list[str], runs: list[str], *, quoted: bool) -> bool:
        """$(...), $((...)), ${...}, $name, $'...'; True when the result is still literal."""
        s, i = self.s, self.i
        nxt = s[i + 1 : i + 2]
        if s.startswith("$((", i):
            end = _matching(s, i + 3, "((", "))")
            inner = s[i + 3 : end]
            if "$(" in inner or "`" in inner or "[" in inner:
                self.unclear.append("an arithmetic expansion that runs or indexes")
            self.i = end + 2 if end < len(s) else len(s)
            text.append("$((...))")
            return False
        if nxt == "(":
            self.i += 2
            runs += self._substitution(")")
            text.append("$(...)")
            return False
        if nxt == "{":
            end = _matching(s, i + 2, "{", "}")
            inner = s[i + 2 : end]
            if "$(" in inner or "`" in inner or "<(" in inner:
                self.unclear.append("a substitution inside ${...}")
            self.i = end + 1 if end < len(s) else len(s)
            text.append("${" + inner + "}")
            return False
        if nxt == "'" and not quoted:
            self.i += 2
            text.append(self._ansi_c())
            return True
        if nxt == '"' and not quoted:
            self.i += 1  # $"..." is a translated "...": the quote is read next
            return True
        m = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])", s[i:])
        if m:
            self.i += m.end()
            text.append(m.group(0))
            return False
        text.append("$")
        self.i += 1
        return True

    def _ansi_c(self) -> str:
        """The body of $'...' with its escapes decoded (\\x72m is rm)."""
        s, out = self.s, list[str]()
        while self.i < len(s):
            c = s[self.i]
            if c == "'":
                self.i += 1
                return "".join(out)
            if c == "\\" and self.i + 1 < len(s):
                e = s[self.i + 1]
                m = re.match(
                    r"x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{1,4})|U([0-9A-Fa-f]{1,8})|"
                    r"([0-7]{1,3})|c(.)",
                    s[self.i + 1 :],
                )
                if e in _ANSI_C:
                    out.append(_ANSI_C[e])
                    self.i += 2
                elif m:
                    hexa = m.group(1) or m.group(2) or m.group(3)
                    if hexa:
                        out.append(chr(min(int(hexa, 16), 0x10FFFF)))
                    elif m.group(4):
                        out.append(chr(int(m.group(4), 8) & 0xFF))
                    else:
                        out.append(chr(ord(m.group(5)) & 0x1F))
                    self.i += 1 + m.end()
                else:
                    out.append("\\" + e)
                    self.i += 2
            else:
                out.append(c)
                self.i += 1
        self.unclear.append("an unclosed quote")
        return "".join(out)

    def _substitution(self, close: str) -> list[str]:
        """Parse $( ... ) / <( ... ) in place; its commands join the line's; their programs."""
        if self.depth + 1 > MAX_DEPTH:  # skipped unread: a reader must not recurse without end
            self.unclear.append("commands nested too deeply to follow")
            self.i = min(len(self.s), _matching(self.s, self.i, "(", ")") + 1)
            return []
        sub = _Lexer(self.s, self.depth + 1)
        sub.i = self.i
        toks = sub.tokens(close)
        self.i = sub.i
        builder = _Builder(self.depth + 1)
        builder.build(toks)
        self.nested += sub.nested + builder.commands
        self.unclear += sub.unclear + builder.unclear
        return [c.program for c in builder.commands]

    def _backticks(self) -> list[str]:
        """Parse `...` (its body unescaped) as a line of its own."""
        s, out = self.s, list[str]()
        while self.i < len(s) and s[self.i] != "`":
            if s[self.i] == "\\" and s[self.i + 1 : self.i + 2] in ("`", "\\", "$"):
                out.append(s[self.i + 1])
                self.i += 2
            else:
                out.append(s[self.i])
                self.i += 1
        if self.i >= len(s):
            self.unclear.append("an unclosed backtick")
        self.i += 1
        inner = parse("".join(out), self.depth + 1)
        self.nested += inner.commands
        self.unclear += inner.unclear
        return [c.program for c in inner.commands if not c.via]


def _matching(s: str, start: int, open_: str, close: str) -> int:
    """Index of the `close` that balances an `open_` before `start` (len(s) when none)."""
    depth, i = 1, start
    while i < len(s):
        if s.startswith(close, i):
            depth -= 1
            if depth == 0:
                return i
            i += len(close)
        elif s.startswith(open_, i):
            depth += 1
            i += len(open_)
        elif s[i] == "\\":
            i += 2
        else:
            i += 1
    return len(s)


# -- commands ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Building:
    argv: list[Word] = field(default_factory=list)
    assignments: list[str] = field(default_factory=list)
    redirects: list[Redirect] = field(default_factory=list)


class _Builder:
    """Tokens to simple commands, wrappers and nested shells unwrapped."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.commands: list[Command] = []
        self.unclear: list[str] = []

    def build(self, tokens: list[_Tok]) -> None:
        """Split at operators; pipelines remember their earlier stages."""
        cur = _Building()
        upstream: list[str] = []
        test_open = False  # inside [[ ... ]]
        for tok in tokens:
            if tok.kind == "op":
                if tok.value == "(" and (cur.argv or cur.assignments):
                    self.unclear.append("a function definition")
                if tok.value in (";;", ";&", ";;&"):
                    self.unclear.append("a case statement")
                stage = self._finish(cur, tuple(upstream))
                if tok.value in ("|", "|&"):
                    upstream += stage
                elif tok.value not in ("(", ")") or not stage:
                    upstream = []
                cur = _Building()
                continue
            if tok.kind == "redir":
                assert tok.word is not None
                cur.redirects.append(Redirect(tok.value, tok.word))
                continue
            word = tok.word
            assert word is not None
            if not cur.argv:
                if word.literal and word.text in _RESERVED_SKIP and not cur.assignments:
                    continue
                if word.literal and word.text in ("{", "}") and not cur.assignments:
                    continue
                if word.literal and word.text in _RESERVED_UNCLEAR:
                    self.unclear.append(f"a {word.text} construct")
                    continue
                if word.literal and word.text == "for" and not cur.assignments:
                    cur.argv.append(Word("for"))  # "for x in ...": a loop header, not a program
                    continue
                if _ASSIGNMENT.match(word.text) and (word.literal or "=" in word.text):
                    cur.assignments.append(word.text)
                    continue
            if word.literal and word.text == "[[":
                test_open = True
            if word.literal and word.text == "]]":
                test_open = False
            cur.argv.append(word)
        if test_open:
            self.unclear.append("an unclosed [[")
        self._finish(cur, tuple(upstream))

    def _finish(self, cur: _Building, upstream: tuple[str, ...]) -> list[str]:
        """Record the command being built (and what it runs); its programs for a pipeline."""
        if not (cur.argv or cur.assignments or cur.redirects):
            return []
        if cur.argv and cur.argv[0].text == "for" and cur.argv[0].literal:
            return []  # loop header: its substitutions are already recorded
        command = Command(
            tuple(cur.argv), tuple(cur.assignments), tuple(cur.redirects), (), upstream
        )
        self.commands.append(command)
        inner = self._unwrap(command, 0)
        return [command.program] + [c.program for c in inner]

    def _unwrap(self, command: Command, level: int) -> list[Command]:
        """The commands a command runs (sudo CMD, bash -c STRING, xargs CMD, find -exec ...)."""
        if level > MAX_DEPTH:
            self.unclear.append("commands nested too deeply to follow")
            return []
        found: list[Command] = []
        for inner in unwrap(command, self.depth):
            if isinstance(inner, str):
                self.unclear.append(inner)
                continue
            if isinstance(inner, Parsed):
                found += list(inner.commands)
                self.commands += list(inner.commands)
                self.unclear += list(inner.unclear)
                continue
            self.commands.append(inner)
            found.append(inner)
            found += self._unwrap(inner, level + 1)
        return found


# -- commands that run commands ---------------------------------------------------------------

# Wrappers: options that take a value (the next word unless attached), then the command.
_WRAPPERS: dict[str, str] = {
    "sudo": "uUgCDhprtT",
    "doas": "uC",
    "run0": "uDg",
    "pkexec": "",
    "nohup": "",
    "nice": "n",
    "ionice": "cnpP",
    "chrt": "",
    "taskset": "",
    "time": "fo",
    "command": "",
    "builtin": "",
    "exec": "a",
    "stdbuf": "ioe",
    "setsid": "",
    "unbuffer": "",
    "flock": "wEc",
    "chroot": "",
    "strace": "eoOpPsSuEXb",
    "ltrace": "eoOpPsSuEX",
    "firejail": "",
    "caffeinate": "",
    "catchsegv": "",
    "torsocks": "",
    "proxychains": "f",
    "proxychains4": "f",
    "su": "sgG",
    "runuser": "ugGs",
    "doas.sh": "",
}
# Long options that take a value (as the next word unless written --opt=value).
_LONG_VALUED = frozenset(
    {
        "--user",
        "--group",
        "--adjustment",
        "--signal",
        "--kill-after",
        "--input",
        "--output",
        "--error",
        "--chdir",
        "--unset",
        "--split-string",
        "--format",
        "--prompt",
        "--host",
        "--role",
        "--type",
        "--shell",
        "--command",
        "--session-command",
    }
)
_XARGS_VALUED = "adEeIiLlnPs"


def unwrap(command: Command, depth: int) -> list[Command | Parsed | str]:
    """What a command runs in turn: commands, parsed lines, or why it cannot be followed."""
    if not command.argv:
        return []
    name = command.program
    args = list(command.args)
    via = (*command.via, name)

    def run(words: list[Word], how: str = name) -> list[Command | Parsed | str]:
        if not words:
            return []
        return [Command(tuple(words), (), (), (*command.via, how), command.upstream)]

    def script(word: Word, how: str) -> list[Command | Parsed | str]:
        if not word.literal:
            return [f"{how} runs text the guard cannot read"]
        inner = parse(word.text, depth + 1)
        return [
            Parsed(
                tuple(
                    replace(c, via=(*via, *c.via), upstream=c.upstream or command.upstream)
                    for c in inner.commands
                ),
                inner.unclear,
            )
        ]

    lower = name.lower()
    if lower in SHELLS or lower in SHELLS_TCSH:
        if lower == "busybox" and args and args[0].literal and not args[0].text.startswith("-"):
            return run(args, "busybox")
        for k, w in enumerate(args):
            if not w.literal:
                continue
            t = w.text
            if t == "--" or not t.startswith(("-", "+")):
                break
            if re.fullmatch(r"[-+][a-zA-Z]*c[a-zA-Z]*", t):
                if k + 1 < len(args):
                    return script(args[k + 1], f"{name} -c")
                return [f"{name} -c without a command"]
            if t in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
                continue
        return []
    if lower in ("eval", "source", "."):
        if lower == "eval":
            joined = " ".join(w.text for w in args)
            if not all(w.literal for w in args):
                return ["eval of text the guard cannot read"]
            return script(Word(joined), "eval")
        return []
    if lower == "env":
        k = 0
        while k < len(args):
            t = args[k].text
            if t in ("-S", "--split-string") or t.startswith(("-S", "--split-string=")):
                value = t.split("=", 1)[1] if "=" in t and t.startswith("--") else t[2:]
                if not value and k + 1 < len(args):
                    return script(args[k + 1], "env -S")
                return script(Word(value, args[k].literal), "env -S")
            if t in ("-u", "--unset", "-C", "--chdir"):
                k += 2
                continue
            if t.startswith("-") or _ASSIGNMENT.match(t):
                k += 1
                continue
            break
        return run(args[k:])
    if lower == "timeout":
        k = _skip_options(args, "sk")
        return run(args[k + 1 :])  # the duration, then the command
    if lower == "watch":
        k = _skip_options(args, "ndq")
        rest = args[k:]
        if not rest:
            return []
        if len(rest) == 1:
            return script(rest[0], "watch")
        return script(Word(" ".join(w.text for w in rest), all(w.literal for w in rest)), "watch")
    if lower == "xargs":
        k = _skip_options(args, _XARGS_VALUED)
        return run(args[k:] or [Word("echo")])
    if lower in ("find", "fd", "fdfind"):
        found: list[Command | Parsed | str] = []
        k = 0
        while k < len(args):
            t = args[k].text
            if t in ("-exec", "-execdir", "-ok", "-okdir", "-x", "--exec", "-X", "--exec-batch"):
                end = k + 1
                while end < len(args) and args[end].text not in (";", "+"):
                    end += 1
                found += run(args[k + 1 : end], f"{name} {t}")
                k = end
            k += 1
        return found
    if lower in ("su", "runuser") and any(w.text in ("-c", "--command") for w in args):
        k = next(i for i, w in enumerate(args) if w.text in ("-c", "--command"))
        return script(args[k + 1], f"{name} -c") if k + 1 < len(args) else []
    if lower == "script":
        for k, w in enumerate(args):
            if w.text in ("-c", "--command") and k + 1 < len(args):
                return script(args[k + 1], "script -c")
        return []
    if lower in _WRAPPERS:
        if lower == "command" and any(w.text in ("-v", "-V") for w in args[:2]):
            return []
        k = _skip_options(args, _WRAPPERS[lower])
        if lower in ("chrt", "taskset"):
            k += 1  # priority / CPU mask before the command
        if lower == "chroot":
            k += 1  # the new root
        return run(args[k:])
    return []


def _skip_options(args: list[Word], valued: str) -> int:
    """Index of the first word after a wrapper's options (values of `valued` letters skipped)."""
    k = 0
    while k < len(args):
        t = args[k].text
        if t == "--":
            return k + 1
        if not t.startswith("-") or t == "-":
            return k
        if t.startswith("--"):
            k += 2 if t in _LONG_VALUED else 1
            continue
        letters = t[1:]
        for j, letter in enumerate(letters):
            if letter in valued:
                if j == len(letters) - 1:
                    k += 1  # the value is the next word
                break
        k += 1
    return k
