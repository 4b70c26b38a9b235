"""The one reader of model text: Qwen 3.5 tool calls (XML, JSON or structured) to actions."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from actions.errors import ArgumentError
from actions.params import CONVENTION, Param, dim, kind
from actions.screen import CoordinateSpace
from actions.types import (
    ACTION_TYPES,
    Action,
    ActionSpec,
    action_arguments,
    action_from_json,
)
from agent.backends.base import Completion
from agent.textsafe import quote

TOOL_NAME = "computer_use"

# Far beyond any real answer (long thinking included); past this the output is junk and
# scanning it would only cost time.
MAX_OUTPUT_CHARS = 4_000_000
MAX_ERROR_CHARS = 199


def _parameter_uses() -> dict[str, list[tuple[ActionSpec, Param]]]:
    """Each tool parameter (in order of first use) with the declared actions that take it."""
    uses: dict[str, list[tuple[ActionSpec, Param]]] = {}
    for cls in ACTION_TYPES.values():
        for param in cls.spec.params:
            taken = uses.setdefault(param.name, [])
            if taken and (taken[0][1].schema, taken[0][1].about) != (param.schema, param.about):
                raise TypeError(f"parameter {param.name!r} is declared two ways")
            taken.append((cls.spec, param))
    return uses


# Parameters the Qwen 3.5 template writes verbatim (schema type "string"); all others are JSON.
STRING_PARAMS = frozenset(
    {"action"} | {name for name, uses in _parameter_uses().items() if uses[0][1].verbatim}
)

_TOOL_CALL_OPEN = "<tool_call>"
_TOOL_CALL_CLOSE = "</tool_call>"
_FUNCTION_OPEN = "<function="
_FUNCTION_CLOSE = "</function>"
_PARAM_OPEN = "<parameter="
_PARAM_CLOSE = "</parameter>"
_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
_TAGS = (
    _TOOL_CALL_OPEN,
    _TOOL_CALL_CLOSE,
    _FUNCTION_OPEN,
    _FUNCTION_CLOSE,
    _PARAM_OPEN,
    _PARAM_CLOSE,
    _THINK_OPEN,
    _THINK_CLOSE,
)
# A parameter value holding one of these almost surely swallowed a missing </parameter>.
_SWALLOWED = (_PARAM_OPEN, _FUNCTION_OPEN, _FUNCTION_CLOSE)
# Strings that cannot sit verbatim inside an XML parameter value and still read back the same.
_XML_UNSAFE = (_PARAM_CLOSE, *_SWALLOWED, _THINK_OPEN, _THINK_CLOSE)

# Verbatim from Qwen3.5's chat_template.jinja (the system turn when `tools` is given).
_TOOLS_HEADER = "# Tools\n\nYou have access to the following functions:\n\n<tools>"
_TOOLS_FOOTER = (
    "\n</tools>"
    "\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n"
    "<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n"
    "</parameter>\n<parameter=example_parameter_2>\nThis is the value for the second parameter\n"
    "that can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n"
    "<IMPORTANT>\nReminder:\n"
    "- Function calls MUST follow the specified format: an inner <function=...></function> "
    "block must be nested within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n"
    "- You may provide optional reasoning for your function call in natural language BEFORE "
    "the function call, but NOT after\n"
    "- If there is no function call available, answer the question like normal with your "
    "current knowledge and do not tell the user about function calls\n"
    "</IMPORTANT>"
)


class ProtocolError(ValueError):
    """The model's output is not exactly one valid computer_use call; the message says why."""


@dataclass(frozen=True, slots=True)
class Proposal:
    """What the model proposed: exactly one of action/error is set."""

    action: Action | None
    error: str | None
    thinking: str
    raw: str
    tool_call_id: str | None = None


# --------------------------------------------------------------------------- tool declaration


def tool_schema(space: CoordinateSpace) -> dict[str, object]:
    """The OpenAI `tools` entry for computer_use, with the coordinate convention of `space`."""
    if space.kind == "relative":
        convention = (
            "Coordinates are relative to the screenshot: 0-1000 on each axis, x from the left "
            "edge and y from the top edge, so (0, 0) is the top-left corner and (1000, 1000) "
            "the bottom-right corner, whatever the screen's real resolution."
        )
    else:
        w, h = dim(space.width), dim(space.height)
        convention = (
            f"Coordinates are pixels of the {w}x{h} screenshot you are shown: x from the left "
            f"edge (0-{w}) and y from the top edge (0-{h}); (0, 0) is the top-left corner."
        )
    description = (
        "Use a mouse and keyboard to interact with a computer, and take screenshots.\n"
        "* This is an interface to a desktop GUI: what you see is one screenshot of the "
        "user's screen, and your actions are real mouse and keyboard input.\n"
        "* Some applications may take time to start or process actions, so you may need to "
        "wait and take successive screenshots to see the results of your actions.\n"
        "* Whenever you intend to move the cursor to click on an element like an icon, you "
        "should consult a screenshot to determine the coordinates of the element before "
        "moving the cursor.\n"
        "* Make sure to click any buttons, links, icons, etc with the cursor tip in the "
        "center of the element. Don't click boxes on their edges.\n"
        f"* {convention}\n"
        "* Call exactly one action per reply; you get a new screenshot after each action."
    )
    actions_doc = "The action to perform. The available actions are:\n" + "\n".join(
        f"* `{cls.spec.name}`: {cls.spec.doc}" for cls in ACTION_TYPES.values()
    )
    properties: dict[str, object] = {
        "action": {"description": actions_doc, "enum": list(ACTION_TYPES), "type": "string"}
    }
    for name, uses in _parameter_uses().items():
        param = uses[0][1]
        about = param.about.replace(CONVENTION, convention)
        # A copy: a caller may change the schema it gets, never the declaration.
        schema = copy.deepcopy(dict(param.schema))
        properties[name] = {"description": f"{about} {_usage(uses)}", **schema}
    parameters: dict[str, object] = {
        "type": "object",
        "properties": properties,
        "required": ["action"],
    }
    return {
        "type": "function",
        "function": {"name": TOOL_NAME, "description": description, "parameters": parameters},
    }


def _usage(uses: Sequence[tuple[ActionSpec, Param]]) -> str:
    """Which actions require or accept a parameter, as its description says it."""
    required = [spec for spec, param in uses if param.required]
    optional = [spec for spec, param in uses if not param.required]
    if not optional:
        return f"Required only by {_and([f'`action={s.name}`' for s in required])}."
    if not required:
        return f"Optional, only for {_and([f'`action={s.name}`' for s in optional])}."
    return f"Required by {_and(_grouped(required))}; optional for {_and(_grouped(optional))}."


def _grouped(specs: Sequence[ActionSpec]) -> list[str]:
    """Action names, a declared group named once in place of its members, groups first."""
    groups = list(dict.fromkeys(s.group for s in specs if s.group is not None))
    return groups + [f"`{s.name}`" for s in specs if s.group is None]


def _and(items: Sequence[str]) -> str:
    """Names joined by commas and a last "and"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def tools_system_text(tools: Sequence[Mapping[str, object]]) -> str:
    """The tool declaration as Qwen3.5's chat template writes it into the system turn."""
    # The template renders each tool with transformers' `tojson` filter, which is
    # json.dumps(ensure_ascii=False) with the default ", " / ": " separators and key order kept.
    # A system prompt, if any, follows after "\n\n" (the caller adds it).
    body = "".join("\n" + json.dumps(_plain(tool), ensure_ascii=False) for tool in tools)
    return _TOOLS_HEADER + body + _TOOLS_FOOTER


def _plain(value: object) -> object:
    """Mappings and sequences as dicts and lists, so json.dumps takes them."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- writing calls


def format_tool_call(action: Action) -> str:
    """The action as Qwen 3.5 writes it: an XML tool call (JSON form if XML cannot hold it)."""
    return format_call(action_arguments(action))


def format_call(args: Mapping[str, object]) -> str:
    """computer_use arguments as Qwen 3.5 writes the call (JSON form if XML cannot hold it)."""
    rendered: list[tuple[str, str]] = []
    for name, value in args.items():
        if isinstance(value, str):
            text = value
        else:
            # Lists as the template's `tojson` writes them; numbers the same as str() would.
            text = json.dumps(value, ensure_ascii=False)
        rendered.append((name, text))
    if any(marker in text for _, text in rendered for marker in _XML_UNSAFE):
        # Such a value would end the parameter early or look like thinking; the JSON form with
        # every "<" escaped carries any string without ambiguity.
        payload = json.dumps({"name": TOOL_NAME, "arguments": args}, ensure_ascii=False)
        payload = payload.replace("<", "\\u003c")
        return f"{_TOOL_CALL_OPEN}\n{payload}\n{_TOOL_CALL_CLOSE}"
    lines = [_TOOL_CALL_OPEN, f"{_FUNCTION_OPEN}{TOOL_NAME}>"]
    for name, text in rendered:
        # Values sit between newlines, and exactly one newline each side is removed on reading.
        lines += [f"{_PARAM_OPEN}{name}>", text, _PARAM_CLOSE]
    lines += [_FUNCTION_CLOSE, _TOOL_CALL_CLOSE]
    return "\n".join(lines)


def call_arguments(text: str) -> dict[str, object] | None:
    """The arguments of a reply that is exactly one computer_use call and nothing else.

    For replies deskpilot itself wrote (format_tool_call) or echoed: the prompt sends such a
    step in Qwen 3.5's native shape; None means "send it as text". Values are not validated.
    """
    free: list[str] = []
    try:
        calls = _scan(text, free)
    except ProtocolError:
        return None
    if len(calls) != 1 or calls[0].name != TOOL_NAME or any(part.strip() for part in free):
        return None
    args = calls[0].arguments.items()
    return {k: v if k in STRING_PARAMS else _decode(v) for k, v in args if v is not None}


# --------------------------------------------------------------------------- validation


def parse_arguments(arguments: Mapping[str, object], space: CoordinateSpace) -> Action:
    """Validate computer_use arguments into an action; raise ProtocolError saying what is wrong."""
    if not isinstance(arguments, Mapping):
        raise ProtocolError(f"arguments must be a JSON object, not {kind(arguments)}")
    given: dict[str, object] = {}
    for name, value in arguments.items():
        if not isinstance(name, str):
            raise ProtocolError(f"parameter name {_show(name)} is not a string")
        if name not in STRING_PARAMS:
            value = _decode(value)
        if value is None:
            continue  # models often write every parameter, the unused ones as null
        given[name] = value
    try:
        return action_from_json(given, space)
    except ArgumentError as exc:
        raise ProtocolError(exc.message(_show)) from None


def _decode(value: object) -> object:
    """A non-string parameter that arrived as a string (XML, lax servers): its JSON value."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text or len(text) > 10_000:
        return value
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return value  # left as text; the type check of the parameter reports it


# Every character str.splitlines() breaks a line at.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _show(value: object, limit: int = 40) -> str:
    """Untrusted input, short, for an error message: text verbatim in quotes, never in repr form.

    repr would escape a secret in it (quotes, backslashes, non-ASCII) past the redactor's
    literal match; displays make the message safe to show (agent/textsafe.py).
    """
    if isinstance(value, str):
        # Line breaks as \xNN / \uNNNN escapes (the redactor decodes them): an error is one
        # line, to the model, in the recording and on the user's screen.
        return quote(_LINE_BREAKS.sub(_escaped, value), limit)
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True, default=str)
    except (TypeError, ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- reading output


@dataclass(frozen=True, slots=True)
class _Call:
    """One tool call found in the output, before its arguments are validated."""

    name: str
    arguments: Mapping[str, object]
    source: Literal["xml", "json", "structured"]
    id: str | None = None


def parse_completion(completion: Completion, space: CoordinateSpace) -> Proposal:
    """Read one completion into a proposal; any problem becomes an error, never an exception."""
    content = completion.content if isinstance(completion.content, str) else ""
    reasoning = completion.reasoning if isinstance(completion.reasoning, str) else ""
    structured = list(completion.tool_calls or [])
    raw = content
    thinking_parts = [reasoning]
    try:
        raw = content + _render_structured(structured, content)
        if len(content) > MAX_OUTPUT_CHARS:
            raise ProtocolError(f"output is {len(content)} characters; that is not a reply")
        cut = _split_thinking(content)
        thinking_parts.append(cut.thinking)
        if cut.unclosed:
            if structured:
                raise ProtocolError("tool call inside unfinished thinking (<think> never closed)")
            raise ProtocolError(
                "output was cut off inside thinking (<think> never closed); no tool call"
            )
        # A server that stops on </tool_call> leaves it out; a length cut is a real cut.
        calls = _scan(cut.answer, thinking_parts, completion.finish_reason != "length")
        calls += [_structured_call(call) for call in structured]
        thinking = _join(thinking_parts)
        if not calls:
            if completion.finish_reason == "length":
                raise ProtocolError("output was cut off (length limit) before any tool call")
            raise ProtocolError("no tool call in the output; reply with exactly one tool call")
        if len(calls) > 1:
            raise ProtocolError(f"{len(calls)} tool calls; reply with exactly one")
        call = calls[0]
        if call.name != TOOL_NAME:
            raise ProtocolError(f"call to unknown function {_show(call.name)}; use {TOOL_NAME}")
        action = parse_arguments(call.arguments, space)
        return Proposal(action, None, thinking, raw, call.id)
    except ProtocolError as exc:
        return Proposal(None, _one_line(str(exc)), _join(thinking_parts), raw)
    except Exception as exc:  # hostile input must never take the agent down
        message = f"unexpected parser failure ({type(exc).__name__}); output rejected"
        return Proposal(None, message, _join(thinking_parts), raw)


@dataclass(frozen=True, slots=True)
class _Cut:
    """Content split into thinking and the answer after it."""

    thinking: str
    answer: str
    unclosed: bool


def _split_thinking(content: str) -> _Cut:
    """Separate <think>...</think> (or a bare ...</think>, opened by the prompt) from the answer."""
    opened = content.find(_THINK_OPEN)
    closed = content.find(_THINK_CLOSE)
    if opened != -1 and (closed == -1 or opened < closed):
        if closed == -1:
            return _Cut(content[:opened] + content[opened + len(_THINK_OPEN) :], "", True)
        thinking = content[:opened] + content[opened + len(_THINK_OPEN) : closed]
        return _Cut(thinking, content[closed + len(_THINK_CLOSE) :], False)
    if closed != -1:
        # The generation prompt already opened <think>; the model only closed it.
        return _Cut(content[:closed], content[closed + len(_THINK_CLOSE) :], False)
    return _Cut("", content, False)


def _scan(text: str, free: list[str], stopped: bool = False) -> list[_Call]:
    """Every tool call in the answer text; the text around them goes to `free`.

    stopped: generation ended on a stop sequence, so a final </tool_call> may be missing.
    """
    calls: list[_Call] = []
    pos = 0
    finder = _TagFinder(text)
    while True:
        start, tag = finder.next(pos)
        if start == -1:
            free.append(text[pos:])
            return calls
        free.append(text[pos:start])
        if tag == _TOOL_CALL_OPEN:
            call, pos = _read_tool_call(text, start + len(tag), stopped)
        elif tag == _FUNCTION_OPEN:
            # Qwen 3.5 sometimes leaves out the opening <tool_call>; a stray closing one may follow.
            call, pos = _read_function(text, start + len(tag))
            after = _skip_space(text, pos)
            if text.startswith(_TOOL_CALL_CLOSE, after):
                pos = after + len(_TOOL_CALL_CLOSE)
        elif tag in (_THINK_OPEN, _THINK_CLOSE):
            raise ProtocolError(f"unexpected {tag} after thinking had ended")
        elif tag == _PARAM_OPEN:
            raise ProtocolError("<parameter=...> outside a <function=...> block")
        else:
            raise ProtocolError(f"stray {tag} without its opening tag")
        calls.append(call)


class _TagFinder:
    """Finds the next protocol tag; remembers each tag's next position so scans stay linear."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._next: dict[str, int] = {tag: -2 for tag in _TAGS}  # -2: not searched yet

    def next(self, pos: int) -> tuple[int, str]:
        """The earliest tag at or after pos, as (index, tag), or (-1, "")."""
        best, found = -1, ""
        for tag in _TAGS:
            at = self._next[tag]
            if at == -2 or (at != -1 and at < pos):
                at = self._text.find(tag, pos)
                self._next[tag] = at
            if at != -1 and (best == -1 or at < best):
                best, found = at, tag
        return best, found


def _skip_space(text: str, pos: int) -> int:
    """The index of the first non-whitespace character at or after pos."""
    n = len(text)
    while pos < n and text[pos].isspace():
        pos += 1
    return pos


def _read_tool_call(text: str, pos: int, stopped: bool = False) -> tuple[_Call, int]:
    """The inside of <tool_call>...</tool_call>: an XML function block or a JSON object."""
    pos = _skip_space(text, pos)
    if text.startswith(_FUNCTION_OPEN, pos):
        call, pos = _read_function(text, pos + len(_FUNCTION_OPEN))
        if stopped and _skip_space(text, pos) >= len(text):
            # Servers that use </tool_call> as a stop sequence drop it; everything up to a
            # complete </function>, every parameter closed, did arrive.
            return call, len(text)
    elif text.startswith("{", pos):
        call, pos = _read_json_call(text, pos)
    else:
        if text.find(_TOOL_CALL_CLOSE, pos) == -1:
            raise ProtocolError("unclosed <tool_call>")
        raise ProtocolError("<tool_call> holds neither <function=...> nor a JSON object")
    pos = _skip_space(text, pos)
    if not text.startswith(_TOOL_CALL_CLOSE, pos):
        if pos >= len(text) or _TOOL_CALL_CLOSE.startswith(text[pos:]):
            raise ProtocolError("unclosed <tool_call> (output cut off?)")
        raise ProtocolError("unexpected text inside <tool_call> after the call")
    return call, pos + len(_TOOL_CALL_CLOSE)


def _read_name(text: str, pos: int, what: str) -> tuple[str, int]:
    """The NAME of <function=NAME> or <parameter=NAME>, and the index after '>'."""
    end = text.find(">", pos, pos + 200)
    if end == -1:
        raise ProtocolError(f"unclosed <{what}=...> tag")
    name = text[pos:end]
    if "<" in name or "\n" in name:
        raise ProtocolError(f"malformed <{what}=...> tag")
    name = name.strip()
    if not name:
        raise ProtocolError(f"<{what}=> without a name")
    return name, end + 1


def _read_function(text: str, pos: int) -> tuple[_Call, int]:
    """A <function=NAME> block (after its "<function=") with its parameters."""
    name, pos = _read_name(text, pos, "function")
    params: dict[str, str] = {}
    while True:
        pos = _skip_space(text, pos)
        if text.startswith(_FUNCTION_CLOSE, pos):
            pos += len(_FUNCTION_CLOSE)
            break
        if not text.startswith(_PARAM_OPEN, pos):
            if pos >= len(text) or _FUNCTION_CLOSE.startswith(text[pos:]):
                raise ProtocolError(f"unclosed <function={_clip(name)}> (output cut off?)")
            raise ProtocolError(f"unexpected text inside <function={_clip(name)}>")
        param, pos = _read_name(text, pos + len(_PARAM_OPEN), "parameter")
        end = text.find(_PARAM_CLOSE, pos)
        if end == -1:
            raise ProtocolError(f"unclosed <parameter={_clip(param)}>")
        value = text[pos:end]
        if any(marker in value for marker in _SWALLOWED):
            raise ProtocolError(f"unclosed <parameter={_clip(param)}>")
        if param in params:
            raise ProtocolError(f"duplicate parameter {_show(param)}")
        # The template writes "\n" + value + "\n"; exactly that is removed, nothing more, so
        # typed text keeps its own leading/trailing spaces and newlines.
        if value.startswith("\n"):
            value = value[1:]
        if value.endswith("\n"):
            value = value[:-1]
        params[param] = value
        pos = end + len(_PARAM_CLOSE)
    return _Call(name, _xml_arguments(params), "xml"), pos


def _xml_arguments(params: Mapping[str, str]) -> dict[str, object]:
    """XML parameter strings as arguments: strings verbatim, the rest left for JSON decoding."""
    args: dict[str, object] = dict(params)
    cls = ACTION_TYPES.get(params.get("action", "").strip())
    for name, value in params.items():
        # In XML, null is spelled "null"; for a string parameter the action does not take,
        # that is the model writing every parameter with unused ones null, not text to type.
        if name in STRING_PARAMS and name != "action" and value.strip() == "null":
            if cls is not None and all(p.name != name for p in cls.spec.params):
                args[name] = None
    return args


def _read_json_call(text: str, pos: int) -> tuple[_Call, int]:
    """A {"name": ..., "arguments": ...} object starting at pos."""
    try:
        obj, end = json.JSONDecoder(object_pairs_hook=_unique_pairs).raw_decode(text, pos)
    except ProtocolError:
        raise
    except RecursionError:
        raise ProtocolError("JSON tool call is nested too deeply") from None
    except ValueError as exc:
        raise ProtocolError(f"malformed JSON in <tool_call>: {_json_reason(exc)}") from None
    return _json_envelope(obj, "json"), end


def _json_envelope(obj: object, source: Literal["json"]) -> _Call:
    """Check the {"name", "arguments"} envelope of a JSON tool call."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"JSON tool call must be an object, not {kind(obj)}")
    extra = [k for k in obj if k not in ("name", "arguments")]
    if extra:
        raise ProtocolError(f"unexpected key {_show(extra[0])} in JSON tool call")
    name = obj.get("name")
    if not isinstance(name, str):
        raise ProtocolError("JSON tool call has no string 'name'")
    if "arguments" not in obj:
        raise ProtocolError("JSON tool call has no 'arguments'")
    return _Call(name.strip(), _arguments_object(obj["arguments"]), source)


def _arguments_object(value: object) -> Mapping[str, object]:
    """Arguments as an object; a JSON string holding the object is decoded (at most twice)."""
    for _ in range(2):
        if not isinstance(value, str):
            break
        if not value.strip():
            return {}
        try:
            value = json.loads(value, object_pairs_hook=_unique_pairs)
        except ProtocolError:
            raise
        except RecursionError:
            raise ProtocolError("tool call arguments are nested too deeply") from None
        except ValueError as exc:
            raise ProtocolError(f"malformed JSON arguments: {_json_reason(exc)}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"tool call arguments must be an object, not {kind(value)}")
    return value


def _structured_call(call: object) -> _Call:
    """A structured (server-parsed) tool call."""
    name = getattr(call, "name", None)
    arguments = getattr(call, "arguments", None)
    call_id = getattr(call, "id", None)
    if not isinstance(name, str):
        raise ProtocolError("structured tool call without a function name")
    if arguments is None:
        arguments = "{}"
    args = _arguments_object(arguments)
    return _Call(name.strip(), args, "structured", call_id if isinstance(call_id, str) else None)


def _render_structured(calls: Sequence[object], content: str) -> str:
    """Structured tool calls as text, so `raw` shows everything the model produced."""
    if not calls:
        return ""
    parts = []
    for call in calls:
        name = getattr(call, "name", "")
        arguments = getattr(call, "arguments", "")
        name_json = json.dumps(name if isinstance(name, str) else str(name), ensure_ascii=False)
        args_text = (
            arguments
            if isinstance(arguments, str)
            else json.dumps(arguments, ensure_ascii=False, default=str)
        )
        parts.append(
            f'{_TOOL_CALL_OPEN}\n{{"name": {name_json}, "arguments": {args_text}}}\n'
            f"{_TOOL_CALL_CLOSE}"
        )
    lead = "\n" if content and not content.endswith("\n") else ""
    return lead + "\n".join(parts)


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object that rejects duplicate keys: which of two values would we act on?"""
    obj: dict[str, object] = {}
    for key, value in pairs:
        if key in obj:
            raise ProtocolError(f"duplicate key {_show(key)} in JSON")
        obj[key] = value
    return obj


def _json_reason(exc: ValueError) -> str:
    """The short reason of a JSON decoding error."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at character {exc.pos}"
    return _show(str(exc), 80)


def _clip(name: str) -> str:
    """A tag name short enough for an error message."""
    return name if len(name) <= 40 else name[:37] + "..."


def _join(parts: Sequence[str]) -> str:
    """Thinking pieces joined, empty ones left out."""
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def _one_line(message: str) -> str:
    """An error message as one short line."""
    line = " ".join(message.split())
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 3] + "..."
