"""Errors about untrusted input whose values stay apart from the message until shown."""

from __future__ import annotations

from collections.abc import Callable


class ArgumentError(ValueError):
    """An argument that is not valid; `template` holds "{}" where each untrusted value goes.

    The caller chooses how the values are shown (agent.protocol quotes them so that a secret
    in them stays redactable); str() shows them in repr form, cut short.
    """

    def __init__(self, template: str, *values: object) -> None:
        self.template = template
        self.values = values
        super().__init__(self.message(_short_repr))

    def message(self, show: Callable[[object], str]) -> str:
        """The message with each value shown by `show`."""
        if not self.values:
            return self.template
        return self.template.format(*(show(value) for value in self.values))


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
