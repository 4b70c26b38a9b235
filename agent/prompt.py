"""Chat messages for one step: system prompt, task, history, current screen; prefix-stable."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.backends.base import ChatMessage, ImagePart, Part

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
MAX_ECHO_CHARS = 2000  # an invalid reply is echoed back this far: enough to see the mistake


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One finished step as the model will see it again: its screen, its reply, the result."""

    image: ImagePart
    reply: str
    result: str


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
    ) -> None:
        if history_images < 1:
            raise ValueError("history_images must be at least 1 (the current screen)")
        self.task = task
        self.system_prompt = system_prompt
        self.history_images = history_images
        # Dropping images in chunks changes the prefix less often (issue 8 tunes this).
        self.image_chunk = max(1, image_chunk)

    def first_image_kept(self, observations: int) -> int:
        """Index of the oldest observation still shown as an image."""
        first = max(0, observations - self.history_images)
        return first - first % self.image_chunk if self.image_chunk > 1 else first

    def messages(self, history: Sequence[HistoryEntry], current: ImagePart) -> list[ChatMessage]:
        """system, task + first screen, then (reply, result + screen) for each step so far."""
        images = [h.image for h in history] + [current]
        keep_from = self.first_image_kept(len(images))

        def screen(i: int) -> Part:
            return images[i] if i >= keep_from else OMITTED

        msgs = [
            ChatMessage("system", (self.system_prompt,)),
            ChatMessage("user", (f"Task: {self.task}\n\nCurrent screen:\n", screen(0))),
        ]
        for i, entry in enumerate(history):
            msgs.append(ChatMessage("assistant", (entry.reply,)))
            msgs.append(
                ChatMessage(
                    "user", (tool_response(entry.result) + "\nCurrent screen:\n", screen(i + 1))
                )
            )
        return msgs
