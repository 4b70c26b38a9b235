"""Chat messages for one step: system prompt, task, history, current screen; prefix-stable."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.backends.base import ChatMessage, ImagePart, Part, ToolCall
from agent.protocol import TOOL_NAME, call_arguments, format_call

SYSTEM_PROMPT = (
    "You are deskpilot, an agent that operates a real computer desktop for the user.\n"
    "Each turn you see a screenshot of the screen and call the computer_use tool exactly once "
    "to perform the next action. Act only towards the user's task.\n"
    "Coordinates are on a 0-1000 scale on each axis: [0, 0] is the top-left corner of the "
    "screenshot and [1000, 1000] the bottom-right; aim at the centre of the element.\n"
    "Before typing, click the field that should receive the text. After each action you get "
    "the result and a new screenshot. When the task is done, call terminate with status "
    "success; if it cannot be done, terminate with status failure. If the user asked a "
    "question, reply with the answer action."
)

SYSTEM_PROMPT_ABSOLUTE = SYSTEM_PROMPT.replace(
    "Coordinates are on a 0-1000 scale on each axis: [0, 0] is the top-left corner of the "
    "screenshot and [1000, 1000] the bottom-right",
    "Coordinates are pixels of the screenshot as you see it: [0, 0] is its top-left corner",
)

OMITTED = "[earlier screenshot omitted]"
# A demonstration given as an example (`run --example RUN`) takes at most this many prompt
# tokens: its steps as text first, then as many of its key frames as still fit.
EXAMPLE_TOKENS = 4000
EXAMPLE_INTRO = (
    "Example: this is how the task, or a similar one, was done before. The screen now may "
    "differ: look at it before you act.\n"
)
SCREEN_CAPTION = "\nCurrent screen:\n"
MAX_ECHO_CHARS = 2000  # an invalid reply is echoed back this far: enough to see the mistake


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One finished step as the model will see it again: its screen, its reply, the result."""

    image: ImagePart
    reply: str
    result: str
    summary: str = ""  # one line for the collapsed history, e.g. "left_click at [412, 96]"


SUMMARY_CHARS = 160  # a summarised step's line is cut here: old steps need the gist only


def summary_line(number: int, entry: HistoryEntry) -> str:
    """A finished step as one bounded line of the summarised history."""
    result = " ".join(entry.result.split())
    if result == f"Executed {entry.summary}.":
        result = ""  # the usual case says nothing the action does not
    line = (
        f"{number}. {entry.summary or 'step'}: {result}" if result else f"{number}. {entry.summary}"
    )
    return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 3] + "..."


def tool_response(text: str) -> str:
    """Wrap a result the way Qwen's chat template renders tool results."""
    return f"<tool_response>\n{text}\n</tool_response>"


def echo_reply(raw: str) -> str:
    """An earlier invalid reply, bounded, so the model can see what it got wrong."""
    if len(raw) <= MAX_ECHO_CHARS:
        return raw
    return raw[:MAX_ECHO_CHARS] + f"... [{len(raw) - MAX_ECHO_CHARS} more characters]"


class PromptBuilder:
    """Builds each step's messages; earlier steps render identically so prefix caches hit."""

    def __init__(
        self,
        task: str,
        *,
        system_prompt: str = SYSTEM_PROMPT,
        history_images: int = 3,
        image_chunk: int = 1,
        history_text: int = 4,
        text_chunk: int = 4,
        summary_steps: int = 8,
        example: Sequence[Part] = (),
    ) -> None:
        if history_images < 1:
            raise ValueError("history_images must be at least 1 (the current screen)")
        self.task = task
        self.system_prompt = system_prompt
        self.history_images = history_images
        # Dropping images in chunks changes the prefix less often, but makes the image count
        # (most of the tokens) swing by image_chunk - 1; docs/performance.md explains 1.
        self.image_chunk = max(1, image_chunk)
        # A step whose screenshot is shown keeps its full text, so the text window covers it.
        self.history_text = max(history_text, history_images - 1, 0)
        self.text_chunk = max(1, text_chunk)
        self.summary_steps = max(0, summary_steps)
        # Inside the first user message, after the task (which stays its first text).
        self.example = tuple(example)

    def first_image_kept(self, observations: int) -> int:
        """Index of the oldest observation still shown as an image."""
        first = max(0, observations - self.history_images)
        return first - first % self.image_chunk if self.image_chunk > 1 else first

    def text_window(self, steps: int) -> tuple[int, int]:
        """(first summarised step, first step in full); both move only in text_chunk steps."""
        full_from = max(0, steps - self.history_text)
        full_from -= full_from % self.text_chunk
        summary_from = max(0, full_from - self.summary_steps)
        summary_from -= summary_from % self.text_chunk
        return summary_from, full_from

    def messages(self, history: Sequence[HistoryEntry], current: ImagePart) -> list[ChatMessage]:
        """system, task + first screen, then (call, result + screen) for each step so far.

        Steps whose reply is one computer_use call go in Qwen 3.5's native shape: an assistant
        turn with tool_calls, then a tool turn with the result and the next screen (the chat
        template renders it inside <tool_response>, so the task stays the last real user
        query). Other replies (invalid output) go as text, answered by a user turn.
        """
        images = [h.image for h in history] + [current]
        keep_from = self.first_image_kept(len(images))

        def screen(i: int) -> Part:
            return images[i] if i >= keep_from else OMITTED

        first: tuple[Part, ...] = (f"Task: {self.task}\n\nCurrent screen:\n", screen(0))
        if self.example:
            first = (f"Task: {self.task}\n\n", *self.example, "\nCurrent screen:\n", screen(0))
        msgs = [ChatMessage("system", (self.system_prompt,)), ChatMessage("user", first)]
        summary_from, full_from = self.text_window(len(history))
        if full_from > 0:
            # Older steps as one line each, oldest dropped: the text stays bounded too.
            lines = [] if summary_from == 0 else [f"(steps 1-{summary_from} not shown)"]
            lines += [summary_line(i + 1, history[i]) for i in range(summary_from, full_from)]
            msgs.append(ChatMessage("user", ("Earlier steps, summarised:\n" + "\n".join(lines),)))
        for i in range(full_from, len(history)):
            entry = history[i]
            call = call_arguments(entry.reply)
            if call is None:
                msgs.append(ChatMessage("assistant", (entry.reply,)))
                msgs.append(
                    ChatMessage(
                        "user", (tool_response(entry.result) + SCREEN_CAPTION, screen(i + 1))
                    )
                )
                continue
            # One id per step, the same at every later step: the prefix stays byte-identical.
            ident = f"call_{i + 1}"
            arguments = json.dumps(call, ensure_ascii=False)
            msgs.append(
                ChatMessage("assistant", (), tool_calls=(ToolCall(TOOL_NAME, arguments, ident),))
            )
            msgs.append(
                ChatMessage(
                    "tool", (entry.result, SCREEN_CAPTION, screen(i + 1)), tool_call_id=ident
                )
            )
        return msgs


def legacy_messages(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The conversation in deskpilot's earlier shape: calls as assistant text, results as user
    turns wrapped in <tool_response> (for servers that refuse images in tool messages)."""
    out: list[ChatMessage] = []
    for m in messages:
        if m.role == "assistant" and m.tool_calls:
            calls = [format_call(json.loads(c.arguments)) for c in m.tool_calls]
            text = m.text().strip()
            out.append(
                ChatMessage("assistant", ("\n\n".join([*([text] if text else []), *calls]),))
            )
        elif m.role == "tool":
            parts = list(m.content)
            first = parts[0] if parts else ""
            head = first if isinstance(first, str) else ""
            parts = parts[1:] if isinstance(first, str) else parts
            out.append(ChatMessage("user", _merged([tool_response(head), *parts])))
        else:
            out.append(m)
    return out


def _merged(parts: Sequence[Part]) -> tuple[Part, ...]:
    """Adjacent text parts joined into one."""
    out: list[Part] = []
    for part in parts:
        if isinstance(part, str) and out and isinstance(out[-1], str):
            out[-1] = out[-1] + part
        else:
            out.append(part)
    return tuple(out)


def has_tool_images(messages: Sequence[ChatMessage]) -> bool:
    """Whether any tool turn carries a screenshot (what some servers refuse)."""
    return any(
        m.role == "tool" and any(isinstance(p, ImagePart) for p in m.content) for m in messages
    )


# Estimating prompt tokens when the backend reports none: images exactly (Qwen's resize rule);
# text at ~4 bytes a token (Qwen's BPE on English and JSON/XML); chat-template tokens per turn.
BYTES_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 5  # <|im_start|>role\n ... <|im_end|>\n
TOKENS_PER_IMAGE_WRAP = 2  # <|vision_start|> ... <|vision_end|>
TOOLS_PREAMBLE_TOKENS = 80  # the template's "# Tools ..." text around the schemas


def text_tokens(text: str) -> int:
    """Estimated tokens of a text."""
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)


def estimate_prompt_tokens(
    messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, object]] = ()
) -> int:
    """Estimated prompt tokens of a request: exact for images, approximate for text."""
    from agent.vision import visual_tokens

    total = 0
    if tools:
        total += TOOLS_PREAMBLE_TOKENS + text_tokens(json.dumps(list(tools)))
    for m in messages:
        total += TOKENS_PER_MESSAGE
        for call in m.tool_calls:  # rendered as <tool_call> XML, about as long as the JSON
            total += text_tokens(call.name + call.arguments) + TOKENS_PER_MESSAGE
        for part in m.content:
            if isinstance(part, ImagePart):
                total += visual_tokens(part.width, part.height) + TOKENS_PER_IMAGE_WRAP
            else:
                total += text_tokens(part)
    return total


def fit_example(
    heading: str,
    lines: Sequence[str],
    frames: Sequence[tuple[str, ImagePart]],
    budget: int = EXAMPLE_TOKENS,
) -> tuple[Part, ...]:
    """An example's parts within `budget` tokens: the steps' lines (cut from the end when
    they alone are too long), then captioned key frames in order while they fit."""
    from agent.vision import visual_tokens

    text = EXAMPLE_INTRO + heading + "\n"
    kept: list[str] = []
    for line in lines:
        if text_tokens(text + "\n".join([*kept, line])) > budget:
            kept.append(f"... ({len(lines) - len(kept)} more steps not shown)")
            break
        kept.append(line)
    text += "\n".join(kept) + "\n"
    used = text_tokens(text)
    parts: list[Part] = [text]
    for caption, image in frames:
        cost = text_tokens(caption) + visual_tokens(image.width, image.height)
        cost += TOKENS_PER_IMAGE_WRAP
        if used + cost > budget:
            break
        parts += [caption, image]
        used += cost
    return tuple(parts)
