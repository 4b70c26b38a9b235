"""Secrets: the detector flags passwords and keys but not ordinary typed text; the Redactor."""

from __future__ import annotations

import json
import threading

import pytest

from agent.secrets import (
    MARKER,
    MIN_SECRET_CHARS,
    Redactor,
    find_secrets,
    looks_like_secret,
    secrets_from_env,
)

TYPING_PASSWORD = "The password field is focused, so I type the password."
MENTIONS_PASSWORD = "I log in: the username, then the password."
PIN = "The app asks for the PIN code; I enter it."

# (typed text, the model's thinking, the expected reason or None)
SECRET: list[tuple[str, str, str]] = [
    ("sk-proj-" + "Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7", "", "API key pattern (OpenAI)"),
    ("sk-" + "a1b2c3d4e5f6g7h8i9j0k1l2m3n4", "", "API key pattern (OpenAI)"),
    ("sk-ant-api03-" + "xY9wV8uT7sR6qP5oN4mL3kJ2", "", "API key pattern (Anthropic)"),
    ("ghp_" + "a1B2c3D4" * 5, "", "API key pattern (GitHub)"),
    ("gho_" + "Z9y8X7w6" * 5, "", "API key pattern (GitHub)"),
    ("github_pat_" + "11ABCDEFG0" * 4, "", "API key pattern (GitHub)"),
    ("AKIAIOSFODNN7EXAMPLE", "", "API key pattern (AWS)"),
    ("xoxb-123456789012-abcdefghijkl", "", "API key pattern (Slack)"),
    ("AIza" + "SyA-1234567890abcdefghijklmnopqrstu", "", "API key pattern (Google)"),
    ("hf_" + "kLmNoPqRsT" * 4, "", "API key pattern (Hugging Face)"),
    (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
        "",
        "API key pattern (JWT)",
    ),
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n"
        "-----END OPENSSH PRIVATE KEY-----",
        "",
        "private key",
    ),
    ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "", "private key"),
    ("hunter2-Xk9#pQ", "", "password-like token"),
    ("Password123!", "", "password-like token"),
    ("C0rrect!Horse", "", "password-like token"),
    ("aB3dE5fG7hJ9", "", "high-entropy token"),
    ("kT9vXb2QmP7wLz4NcR8sYd3HfJ6gUa1E", "", "high-entropy token"),
    ("a8f3k2j9x0q1m5n7z4b6", "", "high-entropy token"),
    ("letmein", TYPING_PASSWORD, "password field"),
    ("abc123", "Now I enter the password.", "password field"),
    ("1234", "I type the PIN into the PIN field", "password field"),
    ("admin123", MENTIONS_PASSWORD, "password-like token"),
    ("s3cret_x", MENTIONS_PASSWORD, "password-like token"),
    ("482913", "The 2FA one-time code from the SMS; typing it below the user name.", "PIN"),
    ("https://bob:Tr0ub4dor@example.com/", "", "password in a URL"),
    ("export OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwx", "", "API key pattern (OpenAI)"),
    ("mysql -u root --password=S3cr3t!x", "", "password-like token"),
    ("hunter2-Xk9#pQ\n", TYPING_PASSWORD, "password field"),
]

ORDINARY: list[tuple[str, str]] = [
    ("hello world", ""),
    ("The quick brown fox jumps over the lazy dog.", ""),
    ("Meeting notes for Q3: revenue up 12%", ""),
    ("ls -la", ""),
    ("cd ~/projects/deskpilot && make test", ""),
    ("git commit -m 'Fix bug #12'", ""),
    ("python3 -m pip install numpy==1.26.4", ""),
    ("numpy==1.26.4", ""),
    ("sudo apt-get install -y libssl-dev", ""),
    ("/home/user/file.txt", ""),
    ("C:\\Users\\Bob\\Documents\\report.docx", ""),
    ("report_v2.pdf", ""),
    ("passwords_2024.xlsx", "I open the password spreadsheet"),
    ("https://example.com/search?q=Xy9&lang=en", ""),
    ("www.example.com", ""),
    ("bob@example.com", ""),
    ("bob@example.com", TYPING_PASSWORD + " After the e-mail."),
    ("12345678", ""),
    ("3.14159", ""),
    ("2024-05-01T10:00:00Z", ""),
    ("+1 (555) 010-9999", ""),
    ("getElementById2", ""),
    ("user_id_12345", ""),
    ("MyDocument2024", ""),
    ("ThisIsATest123", ""),
    ("Python-3.11", ""),
    ("iPhone-15", ""),
    ("Q3-Report", ""),
    ("x86_64-linux-gnu", ""),
    ("Internationalization", ""),
    ("snake_case_name", ""),
    ("3f2a9c1b8e7d6a5f4c3b2a1908f7e6d5c4b3a291", ""),  # a commit id
    ("123e4567-e89b-12d3-a456-426614174000", ""),
    ("print('Hello1')", ""),
    ("alice", "I type the username alice; next comes the password."),
    ("hello", "I type hello into the search box."),
    ("Hello, how are you?", TYPING_PASSWORD),
    ("secret", MENTIONS_PASSWORD),
    ("Dear team, the token budget is 4096 tokens.", "I write about the token limit"),
    ("ctrl+s", ""),
    ("=SUM(A1:B12)", ""),
]


@pytest.mark.parametrize(("text", "context", "reason"), SECRET)
def test_secrets_are_flagged_with_their_reason(text: str, context: str, reason: str) -> None:
    assert looks_like_secret(text, context) == reason


@pytest.mark.parametrize(("text", "context"), ORDINARY)
def test_ordinary_typed_text_is_not_flagged(text: str, context: str) -> None:
    assert looks_like_secret(text, context) is None, find_secrets(text, context)


def test_the_tables_are_large_enough() -> None:
    assert len(SECRET) + len(ORDINARY) >= 40 and len(SECRET) >= 20 and len(ORDINARY) >= 20


def test_only_the_secret_part_of_longer_text_is_returned() -> None:
    key = "sk-" + "a1b2c3d4e5f6g7h8i9j0k1l2m3n4"
    assert find_secrets(f"export OPENAI_API_KEY={key}") == [(key, "API key pattern (OpenAI)")]
    assert find_secrets("hunter2-Xk9#pQ\n", TYPING_PASSWORD) == [
        ("hunter2-Xk9#pQ", "password field")
    ]
    assert find_secrets("mysql --password='S3cr3t!x'") == [("S3cr3t!x", "password-like token")]


def test_redacts_every_occurrence_longest_first() -> None:
    r = Redactor(["abcd1234", "abcd1234-long"])
    assert r.redact_text("x abcd1234-long y abcd1234 z") == f"x {MARKER} y {MARKER} z"
    assert len(r) == 2 and "abcd1234" in r


def test_short_or_blank_secrets_are_ignored() -> None:
    r = Redactor(["abc", "    ", "\t\n  x"])
    assert len(r) == 1 and MIN_SECRET_CHARS == 4
    assert r.redact_text("abc and spaces    ") == "abc and spaces    "
    assert not r.add("ab") and not r.add("      ")


def test_json_escaped_forms_are_redacted() -> None:
    secret = 'pä"ss\\W0rd/x'
    r = Redactor([secret])
    raw_model_json = json.dumps({"action": "type", "text": secret})  # \u00e4, \", \\
    assert secret not in raw_model_json  # only escaped forms are there
    assert r.redact_text(raw_model_json) == f'{{"action": "type", "text": "{MARKER}"}}'
    readable = json.dumps({"text": secret}, ensure_ascii=False)
    assert r.redact_text(readable) == f'{{"text": "{MARKER}"}}'
    slashed = json.dumps({"text": secret}).replace("/", "\\/")
    assert r.redact_text(slashed) == f'{{"text": "{MARKER}"}}'
    # Go's encoder (and format_tool_call, for "<") escape <, > and & as well.
    r.add("a<b>&c-9876")
    go = json.dumps({"text": "a<b>&c-9876"}).replace("<", "\\u003c").replace(">", "\\u003e")
    go = go.replace("&", "\\u0026")
    assert r.redact_text(go) == f'{{"text": "{MARKER}"}}'


def test_a_secret_cut_off_by_a_truncation_is_redacted() -> None:
    secret = "sk-proj-" + "Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7" * 4
    r = Redactor([secret])
    shown = f'Executed type(text="{secret[:70]}...).'
    assert r.redact_text(shown) == f'Executed type(text="{MARKER}...).'
    assert r.redact_text("sk-proj-Ab...") == f"{MARKER}..."
    # Three characters say nothing; "..." elsewhere is left alone.
    assert r.redact_text("sk-... and wait...") == "sk-... and wait..."


def test_redact_is_deep_keeps_keys_and_returns_a_new_object() -> None:
    r = Redactor(["hunter2-Xk9#pQ"])
    obj = {
        "hunter2-Xk9#pQ": 1,
        "list": ["a hunter2-Xk9#pQ b", 3, None, {"n": 2.5, "s": "hunter2-Xk9#pQ"}],
        "tuple": ("hunter2-Xk9#pQ",),
    }
    out = r.redact(obj)
    assert out == {
        "hunter2-Xk9#pQ": 1,
        "list": [f"a {MARKER} b", 3, None, {"n": 2.5, "s": MARKER}],
        "tuple": [MARKER],
    }
    assert obj["list"][0] == "a hunter2-Xk9#pQ b"  # the input is untouched


def test_without_secrets_text_passes_through() -> None:
    r = Redactor()
    assert r.redact_text("anything... at all") == "anything... at all" and r.version == 0


def test_version_counts_new_secrets() -> None:
    r = Redactor(["first-secret"])
    assert r.version == 1
    assert r.add("second-secret") and not r.add("second-secret")
    assert r.version == 2


def test_adding_while_redacting_from_another_thread_is_safe() -> None:
    r = Redactor()
    text = " ".join(f"secret-{i:04d}" for i in range(300))
    done = threading.Event()

    def adder() -> None:
        for i in range(300):
            r.add(f"secret-{i:04d}")
        done.set()

    thread = threading.Thread(target=adder)
    thread.start()
    while not done.is_set():
        r.redact_text(text)
    thread.join()
    assert r.redact_text(text) == " ".join([MARKER] * 300)


def test_secrets_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DP_TEST_KEY", "sk-value-1234")
    monkeypatch.setenv("DP_TEST_EMPTY", "")
    monkeypatch.delenv("DP_TEST_UNSET", raising=False)
    assert secrets_from_env(["DP_TEST_KEY", "DP_TEST_EMPTY", "DP_TEST_UNSET"]) == ["sk-value-1234"]
